import { definePolicy } from "../../core/policy";
import type { UserPrincipal } from "../accounts";
import type { Room } from "./rooms.service";

/** Host-only and participant-only actions on a room. */
export const roomsPolicy = definePolicy<Room, UserPrincipal, Record<"manage" | "take_part", (p: UserPrincipal, room: Room) => boolean>>({
  manage: (principal, room) => room.host === principal.name,
  take_part: (principal, room) => room.participants.includes(principal.name),
});
