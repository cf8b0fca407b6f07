import { notFound } from "../../core/errors";
import { definePolicy } from "../../core/policy";
import type { Principal } from "../../core/principal";

export interface PairRoom { room_id: string; a_id: string; b_id: string; created_at: Date }

/** Only a room's two members may use it; to anyone else it does not exist (404). */
export const pairPolicy = definePolicy<PairRoom | undefined, Principal, Record<"use", (p: Principal, r: PairRoom | undefined) => boolean>>(
  { use: (p, r) => r !== undefined && p.kind === "pair" && (r.a_id === p.id || r.b_id === p.id) },
  () => notFound("No such pair room."),
);
