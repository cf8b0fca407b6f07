import { badRequest } from "../../core/errors";
import { LimitSchema, StreamIdSchema, text } from "../../http/schemas";
import { z } from "../../http/zod";

/** A message id: the decimal string of a positive 64-bit integer. */
export const MessageIdSchema = StreamIdSchema;

export const MessageBodySchema = text(1, 4000);

export const PostMessageBody = z.strictObject({ body: MessageBodySchema }).openapi("PostMessageRequest");

export const MessageSchema = z
  .object({
    id: MessageIdSchema,
    channel_id: z.uuid().nullable(),
    room_guid: z.uuid().nullable(),
    sender: z.string(),
    recipient: z.string().nullable(),
    body: z.string(),
    created_at: z.iso.datetime(),
  })
  .openapi("Message");

export const MessagePageSchema = z
  .object({
    items: z.array(MessageSchema),
    next_cursor: MessageIdSchema.nullable().openapi({
      description: "Pass as `before` (newest-first pages) or as `after` (pages after an id); null on the last page",
    }),
  })
  .openapi("MessagePage");

export const HistoryQuerySchema = z.object({
  before: MessageIdSchema.optional(),
  after: MessageIdSchema.optional(),
  /** Alias of `before`, for clients that page every list by `cursor`. */
  cursor: MessageIdSchema.optional(),
  limit: LimitSchema,
});

export type HistoryQueryInput = z.output<typeof HistoryQuerySchema>;

export function toHistoryQuery(query: HistoryQueryInput) {
  if (query.before !== undefined && query.cursor !== undefined)
    throw badRequest("Give `before` or its alias `cursor`, not both.", [{ field: "query.cursor", message: "conflicts with before" }]);
  return { before: query.before ?? query.cursor, after: query.after, limit: query.limit };
}

/** `?after=` on event streams; `Last-Event-ID` carries the same. */
export const StreamQuerySchema = z.object({ after: MessageIdSchema.optional(), access_token: z.string().optional() });
