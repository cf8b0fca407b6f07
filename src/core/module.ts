import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { RequestHandler } from "express";
import type { Registry } from "prom-client";
import type { DataSource, EntityManager } from "typeorm";
import type { ZodType, z } from "zod";
import type { Config } from "../config";
import type { Api } from "../http/api";
import type { HttpAuthenticator } from "../http/auth-context";
import type { FailedCredentialLimiter } from "../http/password-budget";
import type { RateLimitStores } from "../http/rate-limit";
import type { Logger } from "../logger";
import type { Bus } from "../realtime/bus";
import type { Connections } from "../realtime/connections";
import type { MessageMetrics } from "../realtime/metrics";
import type { SocketEventSpecs, SocketMessageSpec, SocketRequestSpec } from "../realtime/events";
import type { AppSocket, SocketDelivery, SocketRelay } from "../realtime/socket-server";
import type { EventStreams } from "../realtime/sse";
import type { StreamRelay, StreamSource } from "../realtime/stream-relay";
import type { Principal } from "./principal";

/** What the kernel gives every module. */
export interface Kernel {
  config: Config;
  dataSource: DataSource;
  bus: Bus;
  log: Logger;
  /** The one ordered relay: modules add their stream sources and publish after commit. */
  relay: StreamRelay;
  /** Ends connections on every door when credentials end. */
  connections: Connections;
  metrics: Registry;
  /** The message counters of `/metrics` (posted, delivered, repaired, cut off). */
  messageMetrics: MessageMetrics;
  /** Stores for rate limits (Redis when REDIS_URL is set). */
  rateLimits: RateLimitStores;
  /** The per-client limit every credential route shares (login, register, pair identities). */
  credentialLimiter: RequestHandler;
  /** The one budget of wrong passwords, per address and per account, every door together (login, HTTP Basic, `current_password`, the lobby's login). */
  failedCredentials: FailedCredentialLimiter;
  /** Server-Sent Events responses. */
  eventStreams: EventStreams;
  /** Throwaway Socket.IO events to a room's sockets on every process (signaling); see `principalRoom`. */
  sockets: SocketDelivery;
  /** True from the shutdown signal on: readiness answers 503 so load balancers stop sending (read-only). */
  isDraining(): boolean;
  /** Every module's `onUserDeleted`, in start order (read when a user is deleted). */
  userDeletedHooks(): UserDeletedHook[];
}

/** A Socket.IO handshake kind: `auth: {token}`, `auth: {privateId}`. */
export interface SocketAuthenticator {
  claims(auth: Record<string, unknown>): boolean;
  authenticate(auth: Record<string, unknown>): Promise<Principal>;
}

/** A request-style Socket.IO event: validated payload in, `{ok: true, ...result}` ack out. */
export interface SocketHandler {
  event: string;
  summary: string;
  schema: ZodType;
  /** What the ack carries besides `ok` (documentation: AsyncAPI). */
  result: ZodType;
  handle(socket: AppSocket, payload: unknown, sockets: SocketRelay): Promise<object>;
}

/** An event a module receives without an ack: the payload as sent, unchecked. */
export interface SocketListener {
  event: string;
  listen(socket: AppSocket, payload: unknown, sockets: SocketRelay): void;
}

/** One handler per request a module declares, each typed by its declaration's schemas. */
export type RequestHandlers<R extends Record<string, SocketRequestSpec>> = {
  [K in keyof R]: (socket: AppSocket, payload: z.output<R[K]["payload"]>, sockets: SocketRelay) => Promise<z.input<R[K]["result"]>>;
};

/** A module's Socket.IO face. */
export interface SocketFace {
  /** Before the client is told it is connected: read resume points. Throwing refuses the connection. */
  handshake?(socket: AppSocket): Promise<void>;
  /** Once connected: join rooms, start following streams. */
  onConnect?(socket: AppSocket, sockets: SocketRelay): void;
  handlers?: SocketHandler[];
  /** Events it receives without an ack (the lobby's `lobby`). */
  listeners?: SocketListener[];
  onDisconnect?(socket: AppSocket): void;
  /** Its events (AsyncAPI and the typed events): the requests are `handlers`' declarations; what it receives without an ack and what it emits. */
  events?: SocketEventSpecs;
}

/** A WebSocket door's protocol, one JSON message per frame, by message name (the lobby's `$type`), for AsyncAPI. */
export interface UpgradeProtocol {
  summary: string;
  /** Client → server. */
  receives: Record<string, SocketMessageSpec>;
  /** Server → client. */
  sends: Record<string, SocketMessageSpec>;
}

/** A WebSocket door of its own on the HTTP port (the lobby's `/lobby_api`). */
export interface Upgrade {
  path: string;
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  protocol?: UpgradeProtocol;
}

/** The user being deleted, as every module sees it. */
export interface DeletedUser {
  id: string;
  username: string;
}

/**
 * Runs inside the deletion's transaction, so a user disappears from every module at once
 * or not at all. What cannot be rolled back (files) goes in the returned callback, which
 * runs after the commit.
 */
export type UserDeletedHook = (manager: EntityManager, user: DeletedUser) => Promise<(() => Promise<void>) | void>;

/** A running module: everything it plugs into the doors. */
export interface ConveneModule<E = unknown> {
  /** What other modules may use of it (through `use`). */
  exports?: E;
  authenticators?: { http?: HttpAuthenticator[]; socket?: SocketAuthenticator[] };
  streams?: StreamSource[];
  routes?(api: Api): void;
  socket?: SocketFace;
  upgrades?: Upgrade[];
  onUserDeleted?: UserDeletedHook;
  start?(): Promise<void>;
  stop?(): Promise<void>;
}

/** Gives a module the exports of one started before it. */
export type Use = <T>(definition: ModuleDefinition<T>) => T;

/** A module: its tables, and how it starts. `modules/index.ts` lists them in start order. */
export interface ModuleDefinition<E = unknown> {
  name: string;
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  entities?: Function[];
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  migrations?: Function[];
  create(kernel: Kernel, use: Use): ConveneModule<E> | Promise<ConveneModule<E>>;
}

export function defineModule<E>(definition: ModuleDefinition<E>): ModuleDefinition<E> {
  return definition;
}

/**
 * The handlers of a module's declared requests (`defineSocketEvents`): each gets its
 * payload typed by its schema and must answer what its result schema says, so the
 * handlers, the AsyncAPI document and the typed events cannot disagree.
 */
export function socketHandlers<R extends Record<string, SocketRequestSpec>>(requests: R, handlers: RequestHandlers<R>): SocketHandler[] {
  return Object.entries(requests).map(([event, spec]) => ({
    event,
    summary: spec.summary,
    schema: spec.payload,
    result: spec.result,
    handle: handlers[event] as SocketHandler["handle"],
  }));
}

/** The tables of a list of modules, for opening the database. */
export function schemaOf(definitions: ModuleDefinition[]) {
  return {
    entities: definitions.flatMap((d) => d.entities ?? []),
    // By the timestamp that ends each name, so migrations of different modules apply in the order they were written.
    migrations: definitions.flatMap((d) => d.migrations ?? []).sort((a, b) => stamp(a) - stamp(b)),
  };
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
const stamp = (migration: Function) => Number(/([0-9]+)$/.exec(migration.name)?.[1] ?? 0);
