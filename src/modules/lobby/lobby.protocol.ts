import { z } from "../../http/zod";

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

export type LobbyEvent =
  | { $type: "table_added"; after_id: number; table: Table; version: number }
  | { $type: "table_updated"; table: Table; version: number }
  | { $type: "table_removed"; id: number; version: number };

export type LobbyFailureBody =
  | { $type: "addition_failed"; after_id: number }
  | { $type: "update_failed"; id: number }
  | { $type: "removal_failed"; id: number };

export const INVALID_MESSAGE = { $type: "invalid_message" } as const;
export const NOT_AUTHORIZED = { $type: "not_authorized" } as const;
export const NOT_AUTHENTICATED = { $type: "not_authenticated" } as const;

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

/** Documentation: the events and answers (AsyncAPI, OpenAPI). */
export const EventSchema = z.object({ $type: z.string(), version: z.number().int().optional() }).passthrough();
export const TableListSchema = z.object({ $type: z.literal("table_list"), tables: z.array(TableSchema), version: z.number().int() });
