import { pageOf, PageQuerySchema, text, UuidInput } from "../../http/schemas";
import { HistoryQuerySchema } from "../messaging";
import { z } from "../../http/zod";

export const RoomSchema = z
  .object({
    guid: z.uuid(),
    name: z.string(),
    capacity: z.number().int().min(1).max(1000),
    host: z.string(),
    participants: z.array(z.string()).openapi({ description: "Usernames, longest-present first" }),
    created_at: z.iso.datetime(),
  })
  .openapi("Room");

export const RoomPageSchema = pageOf(RoomSchema).openapi("RoomPage");

export const RoomParams = z.object({ guid: UuidInput });
export const RoomParticipantParams = z.object({ guid: UuidInput, username: z.string().max(64) });
export const CreateRoomBody = z.strictObject({ name: text(1, 100), capacity: z.number().int().min(1).max(1000).optional() }).openapi("CreateRoomRequest");
export const SetHostBody = z.strictObject({ username: z.string().min(1).max(64) });
export const RoomListQuery = PageQuerySchema.extend({ member: z.string().min(1).max(64).optional() });
export const RoomSubscribePayload = z.strictObject({ guid: UuidInput, after: HistoryQuerySchema.shape.after });
export const RoomGuidPayload = z.strictObject({ guid: UuidInput });
export const RoomSignalPayload = z.strictObject({ guid: UuidInput, to: z.string().min(1).max(64), data: z.record(z.string(), z.unknown()) });

/** Socket.IO: what `room:signal` delivers, and the acks' results (besides `ok: true`). */
export const RoomSignalSchema = z.object({ guid: z.uuid(), from: z.string(), data: z.record(z.string(), z.unknown()) });
export const RoomResult = z.object({ room: RoomSchema });
export const EmptyResult = z.object({});
