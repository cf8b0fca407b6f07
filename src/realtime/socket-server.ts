import type http from "node:http";
import type { IncomingMessage } from "node:http";
import { Server, type Socket } from "socket.io";
import { badRequest, notFound } from "../core/errors";
import type { SocketAuthenticator, SocketFace, SocketHandler, SocketListener } from "../core/module";
import { principalKey, type Principal } from "../core/principal";
import { toProblem } from "../core/problems";
import { answerEngineErrorsAsProblems, ProblemWebSocketServer } from "../http/node-answers";
import type { Logger } from "../logger";
import type { Connections } from "./connections";
import type { AckError, ClientToServerEvents, ServerToClientEvents } from "./events";
import type { MessageMetrics } from "./metrics";
import { SocketRelay } from "./socket-relay";
import type { StreamRelay } from "./stream-relay";

export { SocketRelay } from "./socket-relay";
export { DeliveredResult, SocketDelivery, checkSignalSize, createSocketAdapter } from "./socket-delivery";

export interface SocketData {
  principal: Principal;
  /** Stream key → the function that stops relaying it to this socket. */
  streams: Map<string, () => void>;
  /** Stream key → the last follow/unfollow queued for it, so they apply in order; none while nothing is queued. */
  changes?: Map<string, Promise<void>>;
  /**
   * Set when the socket goes: the replays still running read it and stop. A plain flag,
   * not an AbortController: a controller with its signal is ~770 B per socket.
   */
  gone: { aborted: boolean };
  /**
   * What modules keep per socket (a resume point read at the handshake), by module; only
   * while something is kept (read and write it with socketState / setSocketState). A Map,
   * not a plain object: the Redis adapter serialises `socket.data` for other processes'
   * fetchSockets(), and a Map's entries (live objects, some circular) stay out of that JSON.
   */
  state?: Map<string, unknown>;
}

/** What a module keeps on the socket under `key`, if anything. */
export function socketState<T>(socket: AppSocket, key: string): T | undefined {
  return socket.data.state?.get(key) as T | undefined;
}

/** Keeps `value` on the socket under `key`; `undefined` forgets it. */
export function setSocketState(socket: AppSocket, key: string, value: unknown): void {
  if (value !== undefined) {
    (socket.data.state ??= new Map()).set(key, value);
    return;
  }
  socket.data.state?.delete(key);
  // Most sockets keep nothing once connected: no Map for each of them.
  if (socket.data.state?.size === 0) socket.data.state = undefined;
}

export type AppSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type AppServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export type Ack = (response: object) => void;

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

/** A `connect_error` "unavailable"; its `data` says when to retry, as HTTP's Retry-After would. */
function handshakeUnavailable(error: unknown): Error & { data: { status: 503; retry_after: number } } {
  const retryAfter = Number(toProblem(error).headers["Retry-After"] ?? 5);
  return Object.assign(new Error("unavailable"), { data: { status: 503 as const, retry_after: retryAfter } });
}

/** The Socket.IO room that holds every socket of a principal. */
export const principalRoom = (principal: Pick<Principal, "kind" | "id">) => `principal:${principalKey(principal)}`;

export interface SocketServerOptions {
  httpServer: http.Server;
  authenticators: SocketAuthenticator[];
  faces: SocketFace[];
  relay: StreamRelay;
  connections: Connections;
  log: Logger;
  corsOrigins: string[] | null;
  bufferLimitBytes: number;
  metrics: MessageMetrics;
  /** A connection that has not completed its Socket.IO handshake by then is closed (REQUEST_TIMEOUT_SECONDS). */
  connectTimeoutMs: number;
}

/**
 * Socket.IO on the HTTP server's port. The modules' handshakes decide who connects; each
 * module's face registers its handlers; a socket joins its principal's room and ends
 * when the principal's credentials end (the Connections registry) or expire.
 */
export function createSocketServer(options: SocketServerOptions): AppServer {
  const { httpServer, relay, log, connections, faces } = options;
  const io: AppServer = new Server(httpServer, {
    path: "/socket.io",
    // Other WebSocket upgrades (the lobby) are not Socket.IO's to destroy.
    destroyUpgrade: false,
    cors: { origin: options.corsOrigins ?? true },
    maxHttpBufferSize: 100_000,
    connectTimeout: options.connectTimeoutMs,
    wsEngine: ProblemWebSocketServer,
  });
  answerEngineErrorsAsProblems(io.engine);
  const sockets = new SocketRelay(relay, options.bufferLimitBytes, options.metrics);
  const dispatch = createDispatcher(faces, sockets, log);

  io.use(async (raw, next) => {
    const socket = raw as AppSocket;
    const auth = (typeof socket.handshake.auth === "object" && socket.handshake.auth) || {};
    const authenticator = options.authenticators.find((a) => a.claims(auth));
    if (!authenticator) return next(new Error("unauthorized"));
    let principal: Principal;
    try {
      principal = await authenticator.authenticate(auth);
    } catch (error) {
      // Credentials that could not be checked now (the database is down) are not wrong ones.
      if (toProblem(error).problem.status !== 503) return next(new Error("unauthorized"));
      log.warn({ err: error }, "could not check a socket's credentials");
      return next(handshakeUnavailable(error));
    }
    Object.assign(socket.data, { principal, streams: new Map(), gone: { aborted: false } } satisfies SocketData);
    try {
      for (const face of faces) await face.handshake?.(socket);
      next();
    } catch (error) {
      log.warn({ err: error }, "could not accept a socket");
      next(handshakeUnavailable(error));
    }
  });

  io.on("connection", (raw) => {
    const socket = raw as AppSocket;
    const { principal } = socket.data;
    void socket.join(principalRoom(principal));
    // Ends at once if the credentials ended since the handshake checked them.
    const unregister = connections.add({ principal, end: () => socket.disconnect(true) });
    socket.on("disconnect", () => {
      unregister();
      sockets.unfollowAll(socket);
      for (const face of faces) face.onDisconnect?.(socket);
    });
    if (socket.disconnected) return;
    releaseHandshake(socket);
    for (const face of faces) face.onConnect?.(socket, sockets);
    socket.onAny(dispatch);
  });

  endExpiredSockets(io, httpServer);
  return io;
}

/**
 * Sockets whose credentials expire are disconnected within a second of it, by one sweep
 * over this process' sockets rather than a timer per socket: timers of distinct
 * durations cost ~450 B each (a Timeout and a timer list), and a sweep of ten thousand
 * sockets takes well under a millisecond.
 */
function endExpiredSockets(io: AppServer, httpServer: http.Server): void {
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const socket of io.of("/").sockets.values()) {
      const expiresAt = socket.data.principal?.expiresAt;
      if (expiresAt != null && expiresAt <= now) socket.disconnect(true);
    }
  }, 1000);
  sweep.unref();
  httpServer.once("close", () => clearInterval(sweep));
}

/**
 * The handshake has been read (authenticated, resume points taken): what it carried is
 * kept only for the client's address. Socket.IO keeps the upgrade request and its
 * headers, query and credentials for the socket's whole life otherwise, about 2 KB of
 * each of ten thousand sockets.
 */
function releaseHandshake(socket: AppSocket): void {
  const request = socket.conn.request as IncomingMessage | null;
  Object.assign(socket.handshake, { headers: {}, query: {}, auth: {} });
  (socket.conn as { request: IncomingMessage | null }).request = null;
  // engine.io's WebSocketResponse keeps the request in a once("close") listener on the TCP
  // socket, only to tell HTTP middleware the response ended: there is none, and that
  // answer ended with the upgrade.
  for (const listener of request?.socket.rawListeners("close") ?? []) {
    const wrapped = (listener as { listener?: () => void }).listener;
    if (wrapped && RESPONSE_CLOSE.test(String(wrapped))) request?.socket.removeListener("close", wrapped);
  }
}
const RESPONSE_CLOSE = /^\(\) => this\.emit\("close"\)$/;

type Dispatcher = (this: AppSocket, event: string, ...args: unknown[]) => void;

/**
 * Every module's events through one function shared by all sockets (Socket.IO calls an
 * `onAny` listener with the socket as `this`), rather than a closure per event per socket:
 * what a connected socket costs in memory is what the benchmarks count ten thousand of.
 * A request's payload is validated with zod, its handler's result acknowledged as
 * `{ok: true, ...result}` and any failure as `{ok: false, error: {status, title, detail, errors?}}`;
 * an event no module handles still gets its ack, rather than a client left waiting.
 */
function createDispatcher(faces: SocketFace[], sockets: SocketRelay, log: Logger): Dispatcher {
  const requests = new Map<string, SocketHandler>();
  const listeners = new Map<string, SocketListener>();
  for (const face of faces) {
    for (const handler of face.handlers ?? []) requests.set(handler.event, handler);
    for (const listener of face.listeners ?? []) listeners.set(listener.event, listener);
  }
  return function dispatch(this: AppSocket, event: string, ...args: unknown[]) {
    const listener = listeners.get(event);
    if (listener) return listener.listen(this, args[0], sockets);
    const ack: Ack = typeof args[args.length - 1] === "function" ? (args.pop() as Ack) : () => {};
    const request = requests.get(event);
    if (!request) return ack({ ok: false, error: toAckError(notFound(`No event is named "${event}".`), log) });
    void answer(this, request, args[0], ack);
  };

  async function answer(socket: AppSocket, request: SocketHandler, payload: unknown, ack: Ack): Promise<void> {
    const parsed = request.schema.safeParse(payload);
    if (!parsed.success) {
      const errors = parsed.error.issues.map((i) => ({ field: ["payload", ...i.path.map(String)].join("."), message: i.message }));
      const detail = parsed.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; ");
      ack({ ok: false, error: toAckError(badRequest(detail, errors), log) });
      return;
    }
    try {
      ack({ ok: true, ...(await request.handle(socket, parsed.data, sockets)) });
    } catch (error) {
      ack({ ok: false, error: toAckError(error, log) });
    }
  }
}
