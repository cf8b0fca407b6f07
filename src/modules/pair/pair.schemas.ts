import { PageQuerySchema } from "../../http/schemas";
import { z } from "../../http/zod";
import { HistoryQuerySchema, MessageSchema, PostMessageBody } from "../messaging";

export const PublicIdSchema = z.string().regex(/^[0-9]{3}-[0-9]{3}$/, "must be ddd-ddd");
export const RoomIdSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be a room id");

/** API.md: the privateId may come in header X-Private-Id or as this body field. */
const privateId = z.string().max(200).optional().openapi({ description: "Your privateId, when not sent as the X-Private-Id header" });
export const PrivateIdBody = z.strictObject({ privateId }).openapi("PairCredentials");
export const PairPostBody = PostMessageBody.extend({ privateId }).openapi("PairPostMessageRequest");

export const PairUserSchema = z.object({ publicId: PublicIdSchema, privateId: z.string(), username: z.string() }).openapi("PairIdentity");
export const PairPeerSchema = z.object({ publicId: z.string(), username: z.string() });
export const ConnectSchema = z.object({ roomId: z.string() }).openapi("PairConnect");
export const PairCallSchema = z.object({ roomId: z.string(), with: PairPeerSchema, created_at: z.iso.datetime() });
export const PairCallPageSchema = z.object({ items: z.array(PairCallSchema), next_cursor: z.string().nullable() }).openapi("PairCallPage");
export const PairMessageSchema = MessageSchema.extend({ room_id: RoomIdSchema }).openapi("PairMessage");
export const PairMessagePageSchema = z.object({ items: z.array(PairMessageSchema), next_cursor: z.string().nullable() }).openapi("PairMessagePage");

export const PublicIdParams = z.object({ publicId: PublicIdSchema });
export const RoomParams = z.object({ roomId: RoomIdSchema });
export const PairHistoryQuery = HistoryQuerySchema;
export const CallsQuery = PageQuerySchema;

export const PairSignalPayload = z.strictObject({ roomId: RoomIdSchema, data: z.record(z.string(), z.unknown()) });
export const PairIncomingCallSchema = z.object({ roomId: RoomIdSchema, from: PairPeerSchema });
export const PairSignalSchema = z.object({ roomId: RoomIdSchema, from: PairPeerSchema, data: z.record(z.string(), z.unknown()) });
