import { z } from "../../http/zod";
import type { SocketMessageSpec } from "../../realtime/events";

/** Postgres `integer`: ids and counts beyond it are refused. */
export const INT_MAX = 2_147_483_647;

export const TableSchema = z.object({
  id: z.number().int().min(1).max(INT_MAX),
  name: z.string().min(1).max(100),
  participants: z.number().int().min(0).max(INT_MAX),
});
export type Table = z.infer<typeof TableSchema>;

/** An added table's id is optional; one that is given but not a positive integer fails the addition (not the message). */
export const NewTableSchema = z.object({
  id: z.unknown().optional(),
  name: TableSchema.shape.name,
  participants: TableSchema.shape.participants,
});
export type NewTable = z.infer<typeof NewTableSchema>;

const AnyInt = z.number().int();

export const LoginMessage = z.object({ $type: z.literal("login"), username: z.string().max(1000), password: z.string().max(1000) });
export const PingMessage = z.object({ $type: z.literal("ping"), seq: z.unknown() });
export const SubscribeMessage = z.object({ $type: z.literal("subscribe_tables") });
export const UnsubscribeMessage = z.object({ $type: z.literal("unsubscribe_tables") });
export const AddTableMessage = z.object({ $type: z.literal("add_table"), after_id: AnyInt, table: NewTableSchema });
export const UpdateTableMessage = z.object({ $type: z.literal("update_table"), table: TableSchema.extend({ id: AnyInt }) });
export const RemoveTableMessage = z.object({ $type: z.literal("remove_table"), id: AnyInt });

export const ClientMessage = z.discriminatedUnion("$type", [
  LoginMessage,
  PingMessage,
  SubscribeMessage,
  UnsubscribeMessage,
  AddTableMessage,
  UpdateTableMessage,
  RemoveTableMessage,
]);
export type ClientMessage = z.infer<typeof ClientMessage>;

/** REST bodies. */
export const AddTableBody = AddTableMessage.omit({ $type: true });
export const UpdateTableBody = z.object({ table: TableSchema.extend({ id: AnyInt.optional() }) });

/** What the server sends: answers, and the events of a subscription. */
const Version = z.number().int().min(0).describe("The lobby's version: grows by exactly 1 with every change");
export const LoginSuccessfulMessage = z.object({ $type: z.literal("login_successful"), user_type: z.enum(["admin", "user"]) });
export const LoginFailedMessage = z.object({ $type: z.literal("login_failed") });
export const PongMessage = z.object({ $type: z.literal("pong"), seq: z.unknown().describe("The ping's seq, as sent") });
export const TableListSchema = z.object({ $type: z.literal("table_list"), tables: z.array(TableSchema), version: Version });
export const TableAddedMessage = z.object({ $type: z.literal("table_added"), after_id: AnyInt, table: TableSchema, version: Version });
export const TableUpdatedMessage = z.object({ $type: z.literal("table_updated"), table: TableSchema, version: Version });
export const TableRemovedMessage = z.object({ $type: z.literal("table_removed"), id: AnyInt, version: Version });
export const AdditionFailedMessage = z.object({ $type: z.literal("addition_failed"), after_id: AnyInt });
export const UpdateFailedMessage = z.object({ $type: z.literal("update_failed"), id: AnyInt });
export const RemovalFailedMessage = z.object({ $type: z.literal("removal_failed"), id: AnyInt });
export const NotAuthorizedMessage = z.object({ $type: z.literal("not_authorized") });
export const NotAuthenticatedMessage = z.object({
  $type: z.literal("not_authenticated"),
  message: z.string().optional().describe("Why, when a login was refused unchecked (too many wrong passwords)"),
});
export const InvalidMessageMessage = z.object({ $type: z.literal("invalid_message") });
export const ServiceUnavailableMessage = z.object({
  $type: z.literal("service_unavailable"),
  retry_after: z.number().int().describe("Seconds to wait before sending the message again (HTTP's Retry-After)"),
  message: z.string().describe("Why, for people"),
});

export const LobbyEventSchema = z.discriminatedUnion("$type", [TableAddedMessage, TableUpdatedMessage, TableRemovedMessage]);
export type LobbyEvent = z.output<typeof LobbyEventSchema>;
export const LobbyFailureSchema = z.discriminatedUnion("$type", [AdditionFailedMessage, UpdateFailedMessage, RemovalFailedMessage]);
export type LobbyFailureBody = z.output<typeof LobbyFailureSchema>;

export const ServerMessage = z.discriminatedUnion("$type", [
  LoginSuccessfulMessage,
  LoginFailedMessage,
  PongMessage,
  TableListSchema,
  TableAddedMessage,
  TableUpdatedMessage,
  TableRemovedMessage,
  AdditionFailedMessage,
  UpdateFailedMessage,
  RemovalFailedMessage,
  NotAuthorizedMessage,
  NotAuthenticatedMessage,
  InvalidMessageMessage,
  ServiceUnavailableMessage,
]);
export type ServerMessage = z.output<typeof ServerMessage>;

export const INVALID_MESSAGE = { $type: "invalid_message" } as const satisfies ServerMessage;
export const NOT_AUTHORIZED = { $type: "not_authorized" } as const satisfies ServerMessage;
export const NOT_AUTHENTICATED = { $type: "not_authenticated" } as const satisfies ServerMessage;

/** The protocol by `$type`, for the AsyncAPI document: every message of each union, with what it means. */
export const LOBBY_CLIENT_MESSAGES = {
  login: { summary: "Log in with a Convene account (answers login_successful or login_failed); again replaces the login", payload: LoginMessage },
  ping: { summary: "Answered with pong and the same seq, before login too", payload: PingMessage },
  subscribe_tables: { summary: "Answered with table_list, then every change as an event until unsubscribe_tables", payload: SubscribeMessage },
  unsubscribe_tables: { summary: "No answer; no more table events", payload: UnsubscribeMessage },
  add_table: { summary: "Admin: insert after table after_id (first when -1); answers table_added (as the event when subscribed) or addition_failed", payload: AddTableMessage },
  update_table: { summary: "Admin: answers table_updated (as the event when subscribed) or update_failed", payload: UpdateTableMessage },
  remove_table: { summary: "Admin: answers table_removed (as the event when subscribed) or removal_failed", payload: RemoveTableMessage },
} satisfies Record<ClientMessage["$type"], SocketMessageSpec>;

export const LOBBY_SERVER_MESSAGES = {
  login_successful: { summary: "The login worked; user_type says whether it may change tables", payload: LoginSuccessfulMessage },
  login_failed: { summary: "Wrong username or password (the same answer for both)", payload: LoginFailedMessage },
  pong: { summary: "The answer to ping", payload: PongMessage },
  table_list: { summary: "Every table in order, and the version they are at: the answer to subscribe_tables", payload: TableListSchema },
  table_added: { summary: "Event: a table was inserted after table after_id (-1: first)", payload: TableAddedMessage },
  table_updated: { summary: "Event: a table changed", payload: TableUpdatedMessage },
  table_removed: { summary: "Event: a table was removed", payload: TableRemovedMessage },
  addition_failed: { summary: "add_table refused: after_id unknown, or the id taken or not a positive integer", payload: AdditionFailedMessage },
  update_failed: { summary: "update_table refused: no such table", payload: UpdateFailedMessage },
  removal_failed: { summary: "remove_table refused: no such table", payload: RemovalFailedMessage },
  not_authorized: { summary: "A privileged command from a non-admin", payload: NotAuthorizedMessage },
  not_authenticated: { summary: "A command other than login and ping before login, or a login refused unchecked", payload: NotAuthenticatedMessage },
  invalid_message: { summary: "A frame that is not JSON, not a known message, or has invalid fields (and one over 64 KiB, unread)", payload: InvalidMessageMessage },
  service_unavailable: { summary: "The message could not be handled now (the database is unavailable or overloaded): send it again after retry_after seconds", payload: ServiceUnavailableMessage },
} satisfies Record<ServerMessage["$type"], SocketMessageSpec>;

/** A frame's text as a client message, or null when it is not JSON or not a known message. */
export function parseMessage(value: unknown): ClientMessage | null {
  let data = value;
  if (typeof value === "string") {
    try {
      data = JSON.parse(value);
    } catch {
      return null;
    }
  }
  const result = ClientMessage.safeParse(data);
  return result.success ? result.data : null;
}

/** Documentation (OpenAPI): the answers of the REST face's changes. */
export const EventSchema = z.object({ $type: z.string(), version: z.number().int().optional() }).passthrough();

/**
 * A relayed event is one object for every subscriber on this process: `encode` runs once
 * per object, and every later call for it returns the same encoding.
 */
export function encodeOnce<T>(encode: (message: object) => T): (message: object) => T {
  const encoded = new WeakMap<object, T>();
  return (message) => {
    let result = encoded.get(message);
    if (result === undefined) encoded.set(message, (result = encode(message)));
    return result;
  };
}
