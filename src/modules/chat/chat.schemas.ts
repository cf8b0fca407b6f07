import { pageOf, PageQuerySchema, text, UuidInput } from "../../http/schemas";
import { z } from "../../http/zod";
import { UsernameSchema } from "../accounts";
import { HistoryQuerySchema, IdempotencyKeySchema, MessageBodySchema, MessageSchema } from "../messaging";

export const ChannelNameSchema = text(1, 100).refine((name) => name.trim().length > 0, "must not be blank");

export const CreateChannelBody = z.strictObject({ name: ChannelNameSchema }).openapi("CreateChannelRequest");

export const ChannelSchema = z
  .object({ id: z.uuid(), name: z.string(), created_by: z.string(), created_at: z.iso.datetime() })
  .openapi("Channel");

export const ChannelPageSchema = pageOf(ChannelSchema).openapi("ChannelPage");
export const ChannelParams = z.object({ id: UuidInput });
export const ChannelListQuery = PageQuerySchema;

export const DirectHistoryQuery = HistoryQuerySchema.extend({ with: UsernameSchema.optional() });

/** Socket.IO payloads. */
export const ChatSubscribePayload = z.strictObject({ channel_id: UuidInput, after: HistoryQuerySchema.shape.after });
export const ChatUnsubscribePayload = z.strictObject({ channel_id: UuidInput });
export const ChatSendPayload = z.strictObject({ channel_id: UuidInput, body: MessageBodySchema, idempotency_key: IdempotencyKeySchema.optional() });
export const DirectSendPayload = z.strictObject({ to: UsernameSchema, body: MessageBodySchema, idempotency_key: IdempotencyKeySchema.optional() });

/** Socket.IO ack results (besides `ok: true`). */
export const ChannelIdResult = z.object({ channel_id: z.uuid() });
export const PostedResult = z.object({ message: MessageSchema });
