import { createHash, createHmac, randomBytes, randomInt, randomUUID } from "node:crypto";
import type { DataSource } from "typeorm";
import { unauthorized, unavailable } from "../../core/errors";
import type { Principal } from "../../core/principal";
import { isUniqueViolation } from "../../db/errors";
import type { HistoryQuery, Message, MessageStreamKind, MessagingService, Posted } from "../messaging";
import { pairPolicy, type PairRoom } from "./pair.policy";

export const PAIR_PRINCIPAL = "pair";
interface PairUser { id: string; public_id: string; username: string }
const ADJECTIVES = ["brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "kind", "lucky", "merry", "quiet", "swift"];
const ANIMALS = ["otter", "falcon", "panda", "lynx", "heron", "badger", "koala", "fox", "owl", "seal", "wolf", "yak"];
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const pick = (a: string[]) => a[randomInt(a.length)];

export class PairService {
  readonly rooms: MessageStreamKind;
  constructor(private readonly db: DataSource, private readonly messaging: MessagingService, private readonly key: string) {
    this.rooms = messaging.streamKind("pair", "m.pair_room = $1");
  }

  async create(): Promise<{ publicId: string; privateId: string; username: string }> {
    const [{ n }]: { n: number }[] = await this.db.query(`SELECT count(*)::int AS n FROM pair_public_ids`);
    if (n > 900_000) throw unavailable("No public ids are left.", 3600);
    const privateId = randomBytes(32).toString("base64url");
    const username = `${pick(ADJECTIVES)}-${pick(ANIMALS)}-${String(randomInt(100)).padStart(2, "0")}`;
    for (let attempt = 0; attempt < 20; attempt++) {
      const publicId = `${String(randomInt(1000)).padStart(3, "0")}-${String(randomInt(1000)).padStart(3, "0")}`;
      try {
        await this.db.query(`INSERT INTO pair_public_ids (public_id) VALUES ($1)`, [publicId]);
      } catch (error) {
        if (isUniqueViolation(error)) continue;
        throw error;
      }
      await this.db.query(`INSERT INTO pair_users (id, public_id, private_hash, username) VALUES ($1, $2, $3, $4)`, [randomUUID(), publicId, sha256(privateId), username]);
      return { publicId, privateId, username };
    }
    throw unavailable("Could not find a free public id; try again.");
  }

  async authenticate(privateId: string): Promise<Principal> {
    const rows: PairUser[] = await this.db.query(`SELECT id, public_id, username FROM pair_users WHERE private_hash = $1`, [sha256(privateId)]);
    if (!rows[0]) throw unauthorized("The X-Private-Id is not a pair identity's.", { credentialFailure: true });
    return { kind: PAIR_PRINCIPAL, id: rows[0].id, name: rows[0].username, sessionId: null, expiresAt: null, checkedAt: Date.now() };
  }

  async user(id: string): Promise<PairUser | undefined> {
    return ((await this.db.query(`SELECT id, public_id, username FROM pair_users WHERE id = $1`, [id])) as PairUser[])[0];
  }

  roomIdOf(a: string, b: string): string {
    return createHmac("sha256", this.key).update([a, b].sort().join(":")).digest("base64url");
  }

  /** The room id, the same whether the target exists or not; `other` when a pair was recorded. */
  async connect(me: Principal, publicId: string): Promise<{ roomId: string; other?: string; from?: { publicId: string; username: string } }> {
    const self = await this.user(me.id);
    if (!self) throw unauthorized("This pair identity is gone.");
    const roomId = this.roomIdOf(self.public_id.trim(), publicId);
    const target = ((await this.db.query(`SELECT id FROM pair_users WHERE public_id = $1`, [publicId])) as { id: string }[])[0];
    if (!target || target.id === self.id) return { roomId };
    await this.db.query(`INSERT INTO pair_rooms (room_id, a_id, b_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [roomId, self.id, target.id]);
    return { roomId, other: target.id, from: { publicId: self.public_id.trim(), username: self.username } };
  }

  async room(me: Principal, roomId: string): Promise<PairRoom> {
    const room = ((await this.db.query(`SELECT * FROM pair_rooms WHERE room_id = $1`, [roomId])) as PairRoom[])[0];
    pairPolicy.authorize(me, "use", room);
    return room!;
  }

  post(me: Principal, room: PairRoom, body: string, idempotencyKey?: string): Promise<Posted> {
    return this.messaging.post({
      streams: [this.rooms.key(room.room_id)], pairRoom: room.room_id, sender: { id: null, name: me.name }, body,
      idempotencyKey, principal: `pair:${me.id}`,
    });
  }

  history(roomId: string, query: HistoryQuery) {
    return this.rooms.history(roomId, query);
  }

  async calls(me: Principal) {
    const rows: { room_id: string; public_id: string; username: string; created_at: Date }[] = await this.db.query(
      `SELECT r.room_id, u.public_id, u.username, r.created_at FROM pair_rooms r
       JOIN pair_users u ON u.id = CASE WHEN r.a_id = $1 THEN r.b_id ELSE r.a_id END
       WHERE r.a_id = $1 OR r.b_id = $1 ORDER BY r.created_at DESC, r.room_id LIMIT 100`, [me.id]);
    return { items: rows.map((r) => ({ roomId: r.room_id, with: { publicId: r.public_id.trim(), username: r.username }, created_at: r.created_at.toISOString() })), next_cursor: null };
  }

  async remove(me: Principal): Promise<void> {
    await this.db.transaction(async (m) => {
      const rooms: { room_id: string }[] = await m.query(`SELECT room_id FROM pair_rooms WHERE a_id = $1 OR b_id = $1`, [me.id]);
      for (const r of rooms) await this.rooms.delete(m, r.room_id);
      await m.query(`DELETE FROM pair_rooms WHERE a_id = $1 OR b_id = $1`, [me.id]);
      await m.query(`DELETE FROM pair_users WHERE id = $1`, [me.id]);
    });
  }
}
