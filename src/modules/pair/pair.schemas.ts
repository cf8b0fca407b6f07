import { text } from "../../http/schemas";
import { z } from "../../http/zod";
import { HistoryQuerySchema, MessageBodySchema } from "../messaging";

export const PublicIdSchema = z.string().regex(/^[0-9]{3}-[0-9]{3}$/, "must be ddd-ddd");
export const RoomIdSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be a room id");

export const PairUserSchema = z.object({ publicId: PublicIdSchema, privateId: z.string(), username: z.string() }).openapi("PairIdentity");
export const PairPeerSchema = z.object({ publicId: z.string(), username: z.string() });
export const ConnectSchema = z.object({ roomId: z.string() }).openapi("PairConnect");
export const PairCallSchema = z.object({ roomId: z.string(), with: PairPeerSchema, created_at: z.iso.datetime() });
export const PairCallPageSchema = z.object({ items: z.array(PairCallSchema), next_cursor: z.string().nullable() }).openapi("PairCallPage");

export const PublicIdParams = z.object({ publicId: PublicIdSchema });
export const RoomParams = z.object({ roomId: RoomIdSchema });
export const PairHistoryQuery = HistoryQuerySchema;
export const CallsQuery = z.object({ limit: z.coerce.number().int().min(1).max(100).default(50), cursor: text(1, 200).optional() });

export const PairSignalPayload = z.strictObject({ roomId: RoomIdSchema, data: z.record(z.string(), z.unknown()) });
