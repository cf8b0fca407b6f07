import { z, type ZodType } from "zod";

/**
 * Every Socket.IO event a client may emit, and every one the server emits, in Socket.IO's
 * typed-events convention (`Server<ClientToServerEvents, ServerToClientEvents>`, and
 * `Socket<ServerToClientEvents, ClientToServerEvents>` from socket.io-client). The kernel
 * knows no event: each module adds its own by declaration merging, from the same
 * declaration (`defineSocketEvents`) its handlers, its AsyncAPI channels and these types
 * are made of:
 *
 *     declare module "../../realtime/events" {
 *       interface ClientToServerEvents extends ClientEventsOf<typeof chatEvents> {}
 *       interface ServerToClientEvents extends ServerEventsOf<typeof chatEvents> {}
 *     }
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ClientToServerEvents {}
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ServerToClientEvents {}

/** A failed request's ack `error`: the problem details HTTP gives, without `type`. */
export const AckErrorSchema = z.object({
  status: z.number().int(),
  title: z.string(),
  detail: z.string(),
  errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  retry_after: z.number().int().optional().describe("Seconds to wait (429, 503): what HTTP says in Retry-After"),
});
export type AckError = z.output<typeof AckErrorSchema>;

/** The acknowledgement of a request-style event whose result is `R`. */
export type AckAnswer<R> = ({ ok: true } & R) | { ok: false; error: AckError };

/** A request-style event: a validated payload in, `{ok: true, ...result}` or `{ok: false, error}` as its ack. */
export interface SocketRequestSpec<P extends ZodType = ZodType, R extends ZodType = ZodType> {
  summary: string;
  payload: P;
  /** What the ack carries besides `ok: true`. */
  result: R;
}

/** An event with no ack: sent by the server, or a client's message answered by other events (the lobby's). */
export interface SocketMessageSpec<P extends ZodType = ZodType> {
  summary: string;
  payload: P;
}

/** A module's Socket.IO events, by name. */
export interface SocketEventSpecs {
  /** Client → server, each with an ack. */
  requests?: Record<string, SocketRequestSpec>;
  /** Client → server, without an ack. */
  receives?: Record<string, SocketMessageSpec>;
  /** Server → client. */
  emits?: Record<string, SocketMessageSpec>;
}

/** Keeps the literal event names and the schemas' types of a module's declaration. */
export function defineSocketEvents<E extends SocketEventSpecs>(events: E): E {
  return events;
}

type Part<E, K extends keyof SocketEventSpecs> = E extends { [P in K]: infer R } ? R : Record<never, never>;

type RequestEvents<R> = {
  [K in keyof R]: R[K] extends SocketRequestSpec<infer P, infer A> ? (payload: z.input<P>, ack: (answer: AckAnswer<z.output<A>>) => void) => void : never;
};
type MessageEvents<M, Side extends "input" | "output"> = {
  [K in keyof M]: M[K] extends SocketMessageSpec<infer P> ? (payload: Side extends "input" ? z.input<P> : z.output<P>) => void : never;
};

/** What a module's declaration adds to `ClientToServerEvents`. */
export type ClientEventsOf<E extends SocketEventSpecs> = RequestEvents<Part<E, "requests">> & MessageEvents<Part<E, "receives">, "input">;

/** What a module's declaration adds to `ServerToClientEvents`. */
export type ServerEventsOf<E extends SocketEventSpecs> = MessageEvents<Part<E, "emits">, "output">;
