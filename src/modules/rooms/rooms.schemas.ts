import { pageOf } from "../../http/schemas";
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
