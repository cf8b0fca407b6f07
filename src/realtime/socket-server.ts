import type http from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { Server, type Socket } from "socket.io";
import type { ZodType } from "zod";
import { badRequest, notFound, type FieldProblem } from "../core/errors";
import type { SocketAuthenticator, SocketFace } from "../core/module";
import { principalKey, type Principal } from "../core/principal";
import { toProblem } from "../core/problems";
import type { Logger } from "../logger";
import { belowThreshold } from "./backpressure";
import type { Connections } from "./connections";
import type { ResumePoint, StreamRelay } from "./stream-relay";

export interface SocketData {
  principal: Principal;
  /** Stream key → the function that stops relaying it to this socket. */
  streams: Map<string, () => void>;
  /** Stream key → the last follow/unfollow queued for it, so they apply in order. */
  changes: Map<string, Promise<void>>;
  /** Cancels the replays still running when the socket goes. */
  gone: AbortController;
  /** What modules keep per socket (a resume point read at the handshake), by module. */
  state: Map<string, unknown>;
}

export type AppSocket = Socket<Record<string, (...args: any[]) => void>, Record<string, (...args: any[]) => void>, Record<string, never>, SocketData>;

export type Ack = (response: object) => void;

export interface AckError {
  status: number;
  title: string;
  detail: string;
  errors?: FieldProblem[];
  /** Seconds to wait (429, 503): what HTTP says in Retry-After. */
  retry_after?: number;
}

/** Any failure as an ack's `error`: the same problem details HTTP gives, without `type`. */
export function toAckError(error: unknown, log: Logger): AckError {
  const { problem, headers, unexpected } = toProblem(error);
  if (unexpected) log.error({ err: error }, "socket handler failed");
  const retryAfter = headers["Retry-After"] === undefined ? undefined : Number(headers["Retry-After"]);
  return {
    status: problem.status,
    title: problem.title,
    detail: problem.detail,
    ...(problem.errors ? { errors: problem.errors } : {}),
    ...(retryAfter !== undefined ? { retry_after: retryAfter } : {}),
  };
}

/** The Socket.IO room that holds every socket of a principal. */
export const principalRoom = (principal: Pick<Principal, "kind" | "id">) => `principal:${principalKey(principal)}`;

/** Relays streams to sockets, and cuts off sockets that stop reading. */
export class SocketRelay {
  constructor(
    private readonly relay: StreamRelay,
    private readonly bufferLimitBytes: number,
  ) {}

  /**
   * Starts (or restarts, replaying after `after`: a message id, or a position already
   * read) relaying a stream to the socket as `event`. `check` (may the socket follow it?) runs in turn with the socket's other
   * changes to that stream, so they apply in the order the client asked.
   */
  follow(socket: AppSocket, key: string, event: string, after?: string | ResumePoint, check?: () => Promise<void>): Promise<void> {
    return this.change(socket, key, async () => {
      await check?.();
      const from = typeof after === "object" ? after : await this.relay.resumePoint(key, after);
      this.stop(socket, key);
      const stop = await this.relay.listen(key, (message) => this.emit(socket, event, message), {
        from,
        signal: socket.data.gone.signal,
        ready: () => this.ready(socket),
      });
      if (socket.disconnected) stop();
      else socket.data.streams.set(key, stop);
    });
  }

  unfollow(socket: AppSocket, key: string): Promise<void> {
    return this.change(socket, key, async () => this.stop(socket, key));
  }

  unfollowAll(socket: AppSocket): void {
    socket.data.gone.abort();
    for (const stop of socket.data.streams.values()) stop();
    socket.data.streams.clear();
  }

  private stop(socket: AppSocket, key: string): void {
    socket.data.streams.get(key)?.();
    socket.data.streams.delete(key);
  }

  /** Runs the change after those already queued for the same stream on this socket. */
  private change(socket: AppSocket, key: string, step: () => Promise<void>): Promise<void> {
    const run = (socket.data.changes.get(key) ?? Promise.resolve()).then(step);
    const settled = run.catch(() => undefined);
    socket.data.changes.set(key, settled);
    void settled.then(() => {
      if (socket.data.changes.get(key) === settled) socket.data.changes.delete(key);
    });
    return run;
  }

  emit(socket: AppSocket, event: string, payload: object): void {
    if (this.buffered(socket) > this.bufferLimitBytes) return this.cutOff(socket);
    socket.emit(event, payload);
  }

  /** For replays: a promise while the socket has much unsent (see StreamRelay's `ready`). */
  private ready(socket: AppSocket): Promise<void> | undefined {
    return belowThreshold(
      () => this.buffered(socket),
      this.bufferLimitBytes / 2,
      () => socket.disconnected,
      () => this.cutOff(socket),
    );
  }

  /** Disconnects a client that stopped reading, dropping what it left unread at once. */
  private cutOff(socket: AppSocket): void {
    socket.disconnect(true);
    // engine.io would otherwise wait for the unread output to drain (until the ping timeout).
    socket.conn.close(true);
    (socket.conn.transport as unknown as { socket?: { terminate?: () => void } }).socket?.terminate?.();
  }

  /** Bytes waiting to reach the client: in the WebSocket, and queued in engine.io (all that polling has). */
  private buffered(socket: AppSocket): number {
    const transport = socket.conn.transport as unknown as { socket?: { bufferedAmount?: number } };
    const queued = (socket.conn as unknown as { writeBuffer?: Array<{ data?: unknown }> }).writeBuffer ?? [];
    let bytes = transport.socket?.bufferedAmount ?? 0;
    for (const packet of queued) bytes += typeof packet.data === "string" ? packet.data.length : 64;
    return bytes;
  }
}

/**
 * Throwaway events to the sockets in a Socket.IO room, on every process (signaling,
 * incoming-call notices): nothing stored, nothing repaired. Resolves with how many
 * sockets it reached.
 */
export class SocketDelivery {
  private io: Server | null = null;

  bind(io: Server): void {
    this.io = io;
  }

  async emit(room: string, event: string, payload: object): Promise<number> {
    if (!this.io) return 0;
    const sockets = await this.io.in(room).fetchSockets();
    for (const socket of sockets) socket.emit(event, payload);
    return sockets.length;
  }

  /** Makes every socket in `room` (on every process) leave `fromRoom`. */
  leave(room: string, fromRoom: string): void {
    this.io?.in(room).socketsLeave(fromRoom);
  }
}

export interface SocketServerOptions {
  httpServer: http.Server;
  authenticators: SocketAuthenticator[];
  faces: SocketFace[];
  relay: StreamRelay;
  connections: Connections;
  log: Logger;
  corsOrigins: string[] | null;
  bufferLimitBytes: number;
}

/**
 * Socket.IO on the HTTP server's port. The modules' handshakes decide who connects; each
 * module's face registers its handlers; a socket joins its principal's room and ends
 * when the principal's credentials end (the Connections registry) or expire.
 */
export function createSocketServer(options: SocketServerOptions): Server {
  const { httpServer, relay, log, connections, faces } = options;
  const io = new Server(httpServer, {
    path: "/socket.io",
    // Other WebSocket upgrades (the lobby) are not Socket.IO's to destroy.
    destroyUpgrade: false,
    cors: { origin: options.corsOrigins ?? true },
    maxHttpBufferSize: 100_000,
  });
  const sockets = new SocketRelay(relay, options.bufferLimitBytes);

  io.use(async (raw, next) => {
    const socket = raw as AppSocket;
    const auth = (typeof socket.handshake.auth === "object" && socket.handshake.auth) || {};
    const authenticator = options.authenticators.find((a) => a.claims(auth));
    if (!authenticator) return next(new Error("unauthorized"));
    let principal: Principal;
    try {
      principal = await authenticator.authenticate(auth);
    } catch {
      return next(new Error("unauthorized"));
    }
    Object.assign(socket.data, { principal, streams: new Map(), changes: new Map(), gone: new AbortController(), state: new Map() } satisfies SocketData);
    try {
      for (const face of faces) await face.handshake?.(socket);
      next();
    } catch (error) {
      log.warn({ err: error }, "could not accept a socket");
      next(new Error("unavailable"));
    }
  });

  io.on("connection", (raw) => {
    const socket = raw as AppSocket;
    const { principal } = socket.data;
    void socket.join(principalRoom(principal));
    const expiry = principal.expiresAt
      ? setTimeout(() => socket.disconnect(true), Math.min(principal.expiresAt - Date.now(), 2 ** 31 - 1))
      : undefined;
    // Ends at once if the credentials ended since the handshake checked them.
    const unregister = connections.add({ principal, end: () => socket.disconnect(true) });
    socket.on("disconnect", () => {
      clearTimeout(expiry);
      unregister();
      sockets.unfollowAll(socket);
      for (const face of faces) face.onDisconnect?.(socket);
    });
    if (socket.disconnected) return;
    for (const face of faces) {
      for (const handler of face.handlers ?? []) onRequest(socket, handler.event, handler.schema, log, (payload) => handler.handle(socket, payload, sockets));
      face.onConnect?.(socket, sockets);
    }
    // An event no module handles still gets its ack, rather than a client left waiting.
    socket.onAny((event: string, ...args: unknown[]) => {
      const ack = args[args.length - 1];
      if (socket.listeners(event).length === 0 && typeof ack === "function")
        (ack as Ack)({ ok: false, error: toAckError(notFound(`No event is named "${event}".`), log) });
    });
  });

  return io;
}

/**
 * Registers a request-style event: the payload is validated with zod, the handler's
 * result is acknowledged as `{ok: true, ...result}` and any failure as
 * `{ok: false, error: {status, title, detail, errors?}}`.
 */
function onRequest(socket: AppSocket, event: string, schema: ZodType, log: Logger, handler: (payload: unknown) => Promise<object>): void {
  socket.on(event, async (...args: unknown[]) => {
    const ack: Ack = typeof args[args.length - 1] === "function" ? (args.pop() as Ack) : () => {};
    const parsed = schema.safeParse(args[0]);
    if (!parsed.success) {
      const errors = parsed.error.issues.map((i) => ({ field: ["payload", ...i.path.map(String)].join("."), message: i.message }));
      const detail = parsed.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; ");
      ack({ ok: false, error: toAckError(badRequest(detail, errors), log) });
      return;
    }
    try {
      ack({ ok: true, ...(await handler(parsed.data)) });
    } catch (error) {
      ack({ ok: false, error: toAckError(error, log) });
    }
  });
}

/**
 * With REDIS_URL, Socket.IO's own Redis adapter carries `SocketDelivery`'s throwaway
 * events to sockets on other processes. Ordered streams do not use it: the relay
 * delivers those on each process, with repair.
 */
export async function createSocketAdapter(io: Server, url: string, prefix: string, log: Logger): Promise<{ close(): Promise<void> }> {
  const publisher = createClient({ url, socket: { connectTimeout: 5000 } });
  const subscriber = publisher.duplicate();
  for (const client of [publisher, subscriber]) client.on("error", (error: Error) => log.warn({ err: error }, "socket.io redis adapter connection error"));
  await Promise.all([publisher.connect(), subscriber.connect()]);
  io.adapter(createAdapter(publisher, subscriber, { key: `${prefix}socket.io`, requestsTimeout: 3000 }));
  return {
    async close() {
      await Promise.allSettled([publisher.quit(), subscriber.quit()]);
    },
  };
}
