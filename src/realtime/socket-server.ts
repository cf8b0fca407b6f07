import type http from "node:http";
import { Server, type Socket } from "socket.io";
import type { ZodType, z } from "zod";
import type { AuthContext } from "../http/auth-context";
import { toProblem } from "../http/error-handler";
import { badRequest, notFound } from "../http/errors";
import type { Logger } from "../logger";
import { ACCOUNTS_TOPIC, endsConnection, type AccountsEvent, type SessionService } from "../modules/accounts/sessions.service";
import type { Message } from "../modules/messaging/messaging.service";
import { dmStream } from "../modules/messaging/streams";
import { belowThreshold } from "./backpressure";
import type { Bus } from "./bus";
import type { ResumePoint, StreamRelay } from "./stream-relay";

export interface SocketData {
  auth: AuthContext;
  /** Stream key → the function that stops relaying it to this socket. */
  streams: Map<string, () => void>;
  /** Stream key → the last follow/unfollow queued for it, so they apply in order. */
  changes: Map<string, Promise<void>>;
  /** Cancels the replays still running when the socket goes. */
  gone: AbortController;
  /** The user's direct-message stream position when the handshake was accepted. */
  directFrom: ResumePoint;
}

export type AppSocket = Socket<Record<string, (...args: any[]) => void>, Record<string, (...args: any[]) => void>, Record<string, never>, SocketData>;

/** A module's Socket.IO face: registers its event handlers on each new socket. */
export type SocketModule = (socket: AppSocket, sockets: SocketRelay) => void;

export type Ack = (response: object) => void;

export interface AckError {
  status: number;
  title: string;
  detail: string;
}

function toAckError(error: unknown, log: Logger): AckError {
  const { problem, unexpected } = toProblem(error);
  if (unexpected) log.error({ err: error }, "socket handler failed");
  return { status: problem.status, title: problem.title, detail: problem.detail };
}

/**
 * Registers a request-style event: the payload is validated with zod, the handler's
 * result is acknowledged as `{ok: true, ...result}` and any failure as
 * `{ok: false, error: {status, title, detail}}`.
 */
export function onRequest<S extends ZodType>(
  socket: AppSocket,
  event: string,
  schema: S,
  log: Logger,
  handler: (payload: z.output<S>) => Promise<object>,
): void {
  socket.on(event, async (...args: unknown[]) => {
    const ack: Ack = typeof args[args.length - 1] === "function" ? (args.pop() as Ack) : () => {};
    const parsed = schema.safeParse(args[0]);
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; ");
      ack({ ok: false, error: toAckError(badRequest(detail), log) });
      return;
    }
    try {
      ack({ ok: true, ...(await handler(parsed.data)) });
    } catch (error) {
      ack({ ok: false, error: toAckError(error, log) });
    }
  });
}

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

  emit(socket: AppSocket, event: string, payload: Message | object): void {
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

export interface SocketServerOptions {
  httpServer: http.Server;
  sessions: SessionService;
  relay: StreamRelay;
  bus: Bus;
  log: Logger;
  corsOrigins: string[] | null;
  bufferLimitBytes: number;
  modules: SocketModule[];
}

/**
 * Socket.IO on the HTTP server's port: bearer-token auth at the handshake, direct
 * messages to every connection of a user, and disconnection when a session ends.
 */
export async function createSocketServer(options: SocketServerOptions): Promise<Server> {
  const { httpServer, sessions, relay, bus, log } = options;
  const io = new Server(httpServer, {
    path: "/socket.io",
    // Other WebSocket upgrades (the lobby) are not Socket.IO's to destroy.
    destroyUpgrade: false,
    cors: { origin: options.corsOrigins ?? true },
    maxHttpBufferSize: 100_000,
  });
  const sockets = new SocketRelay(relay, options.bufferLimitBytes);

  io.use(async (socket, next) => {
    const token: unknown = socket.handshake.auth?.token;
    if (typeof token !== "string" || token === "") return next(new Error("unauthorized"));
    let auth: AuthContext;
    try {
      auth = await sessions.verifyBearer(token);
    } catch {
      return next(new Error("unauthorized"));
    }
    try {
      // Read before the client is told it is connected: every direct message committed
      // from then on has a larger id, and reaches it.
      const directFrom = await relay.resumePoint(dmStream(auth.user.id), undefined);
      Object.assign(socket.data, { auth, directFrom, streams: new Map(), changes: new Map(), gone: new AbortController() } satisfies SocketData);
      next();
    } catch (error) {
      log.warn({ err: error }, "could not accept a socket");
      next(new Error("unavailable"));
    }
  });

  io.on("connection", (raw) => {
    const socket = raw as AppSocket;
    const { user, expiresAt, checkedAt } = socket.data.auth;
    void socket.join(`user:${user.id}`);
    // A logout between the handshake and joining that room was not seen by it.
    if (sessions.revokedSince(socket.data.auth, checkedAt)) {
      socket.disconnect(true);
      return;
    }
    const expiry = expiresAt ? setTimeout(() => socket.disconnect(true), Math.min(expiresAt - Date.now(), 2 ** 31 - 1)) : undefined;
    socket.on("disconnect", () => {
      clearTimeout(expiry);
      sockets.unfollowAll(socket);
    });
    for (const register of options.modules) register(socket, sockets);
    // An event no module handles still gets its ack, rather than a client left waiting.
    socket.onAny((event: string, ...args: unknown[]) => {
      const ack = args[args.length - 1];
      if (socket.listeners(event).length === 0 && typeof ack === "function")
        (ack as Ack)({ ok: false, error: toAckError(notFound(`No event is named "${event}".`), log) });
    });
    sockets.follow(socket, dmStream(user.id), "dm:message", socket.data.directFrom).catch((error: unknown) => {
      log.error({ err: error }, "could not relay direct messages to a socket");
      socket.disconnect(true);
    });
  });

  // The same rule as for event streams decides which of the user's sockets end.
  await bus.subscribe(ACCOUNTS_TOPIC, (raw) => {
    const event = raw as AccountsEvent;
    io.local
      .in(`user:${event.userId}`)
      .fetchSockets()
      .then((userSockets) => {
        for (const socket of userSockets) {
          const { user, sessionId } = (socket.data as SocketData).auth;
          if (endsConnection(event, user.id, sessionId)) socket.disconnect(true);
        }
      })
      .catch((error: unknown) => log.error({ err: error }, "could not end the sockets of a session"));
  });

  return io;
}
