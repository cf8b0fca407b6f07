import { createHash, createHmac, randomBytes, randomInt, randomUUID } from "node:crypto";
import type { DataSource } from "typeorm";
import { unauthorized, unavailable } from "../../core/errors";
import { decodeCursor, encodeCursor, toPage, type Page } from "../../core/pagination";
import type { Principal } from "../../core/principal";
import { isUniqueViolation } from "../../db/errors";
import type { Standing } from "../../realtime/connections";
import type { HistoryQuery, Message, MessageStreamKind, MessagingService, Posted } from "../messaging";
import { pairPolicy, type PairRoom } from "./pair.policy";

export const PAIR_PRINCIPAL = "pair";

/** A pair identity as a principal: `name` is its username; the publicId makes its roomIds. */
export interface PairPrincipal extends Principal {
  publicId: string;
}

export interface PairCall {
  roomId: string;
  with: { publicId: string; username: string };
  created_at: string;
}

/** How many `ddd-ddd` ids exist. */
export const PUBLIC_ID_SPACE = 1_000_000;

export interface PairOptions {
  /** Fewer public ids than this never issued: the space is running low and creation answers 503. */
  reserve: number;
}

const ADJECTIVES = ["brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "kind", "lucky", "merry", "quiet", "swift"];
const ANIMALS = ["otter", "falcon", "panda", "lynx", "heron", "badger", "koala", "fox", "owl", "seal", "wolf", "yak"];
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const pick = (a: string[]) => a[randomInt(a.length)];
const randomPublicId = () => `${String(randomInt(1000)).padStart(3, "0")}-${String(randomInt(1000)).padStart(3, "0")}`;
// With at least `reserve` ids free (10% by default), a batch of 64 random candidates
// holds no free one about once in 850; a few batches make a miss negligible.
const CANDIDATES = 64;
const BATCHES = 5;
const CALL_CURSOR = /^[0-9]{1,20}$|^[A-Za-z0-9_-]{43}$/;

export function asPair(principal: Principal): PairPrincipal | null {
  return principal.kind === PAIR_PRINCIPAL ? (principal as PairPrincipal) : null;
}

export class PairService {
  readonly rooms: MessageStreamKind;
  constructor(
    private readonly db: DataSource,
    private readonly messaging: MessagingService,
    private readonly key: string,
    private readonly options: PairOptions = { reserve: PUBLIC_ID_SPACE / 10 },
  ) {
    this.rooms = messaging.streamKind("pair", "m.pair_room = $1");
  }

  /**
   * A new identity. Its publicId is one never issued before (pair_public_ids keeps every
   * one, deleted identities' too); when few are left, 503 rather than reuse one.
   */
  async create(): Promise<{ publicId: string; privateId: string; username: string }> {
    const [{ n }]: { n: number }[] = await this.db.query(`SELECT count(*)::int AS n FROM pair_public_ids`);
    if (PUBLIC_ID_SPACE - n < this.options.reserve) throw unavailable("The space of public ids is running low; no new identities can be made.", 3600);
    const privateId = randomBytes(32).toString("base64url");
    const username = `${pick(ADJECTIVES)}-${pick(ANIMALS)}-${String(randomInt(100)).padStart(2, "0")}`;
    for (let batch = 0; batch < BATCHES; batch++) {
      const candidates = Array.from({ length: CANDIDATES }, randomPublicId);
      const free: { c: string }[] = await this.db.query(
        `SELECT c FROM unnest($1::text[]) AS c WHERE NOT EXISTS (SELECT 1 FROM pair_public_ids p WHERE p.public_id = c) LIMIT 1`,
        [candidates],
      );
      if (!free[0]) continue;
      const publicId = free[0].c;
      try {
        await this.db.transaction(async (m) => {
          await m.query(`INSERT INTO pair_public_ids (public_id) VALUES ($1)`, [publicId]);
          await m.query(`INSERT INTO pair_users (id, public_id, private_hash, username) VALUES ($1, $2, $3, $4)`, [randomUUID(), publicId, sha256(privateId), username]);
        });
      } catch (error) {
        // Taken meanwhile by a concurrent creation: look again.
        if (isUniqueViolation(error)) continue;
        throw error;
      }
      return { publicId, privateId, username };
    }
    throw unavailable("Could not find a free public id; try again.");
  }

  async authenticate(privateId: string): Promise<PairPrincipal> {
    const rows: { id: string; public_id: string; username: string }[] = await this.db.query(
      `SELECT id, public_id, username FROM pair_users WHERE private_hash = $1`,
      [sha256(privateId)],
    );
    if (!rows[0]) throw unauthorized("That privateId is not a pair identity's.", { credentialFailure: true });
    const { id, public_id, username } = rows[0];
    return { kind: PAIR_PRINCIPAL, id, name: username, publicId: public_id.trim(), sessionId: null, expiresAt: null, checkedAt: Date.now() };
  }

  /** Which identities still exist (for re-checking connections after the bus lost events): "ended" for the deleted. */
  async standings(principals: Principal[]): Promise<Standing[]> {
    const rows: { id: string }[] = await this.db.query(`SELECT id::text AS id FROM pair_users WHERE id = ANY($1::uuid[])`, [principals.map((p) => p.id)]);
    const existing = new Set(rows.map((r) => r.id));
    return principals.map((p) => (existing.has(p.id) ? "valid" : "ended"));
  }

  roomIdOf(a: string, b: string): string {
    return createHmac("sha256", this.key).update([a, b].sort().join(":")).digest("base64url");
  }

  /**
   * The room id, computed before anything is looked up, so it is the same whether the
   * target exists or not. Then one statement either way: it finds the target and records
   * the pair when there is one. `other` is the target's id when it exists; `opened` when
   * the room is new.
   */
  async connect(me: PairPrincipal, publicId: string): Promise<{ roomId: string; other?: string; opened: boolean }> {
    const roomId = this.roomIdOf(me.publicId, publicId);
    const rows: { id: string; opened: boolean }[] = await this.db.query(
      `WITH target AS (SELECT id FROM pair_users WHERE public_id = $3 AND id <> $2),
            added AS (INSERT INTO pair_rooms (room_id, a_id, b_id) SELECT $1, $2, id FROM target ON CONFLICT DO NOTHING RETURNING room_id)
       SELECT t.id, EXISTS (SELECT 1 FROM added) AS opened FROM target t`,
      [roomId, me.id, publicId],
    );
    return rows[0] ? { roomId, other: rows[0].id, opened: rows[0].opened } : { roomId, opened: false };
  }

  async room(me: Principal, roomId: string): Promise<PairRoom> {
    const room = ((await this.db.query(`SELECT * FROM pair_rooms WHERE room_id = $1`, [roomId])) as PairRoom[])[0];
    pairPolicy.authorize(me, "use", room);
    return room!;
  }

  /** The ids of the rooms an identity is in. */
  async roomIds(identityId: string): Promise<string[]> {
    const rows: { room_id: string }[] = await this.db.query(`SELECT room_id FROM pair_rooms WHERE a_id = $1 OR b_id = $1`, [identityId]);
    return rows.map((r) => r.room_id);
  }

  /** The rooms of many identities at once (a resync): identity id → its room ids. */
  async roomsOf(identityIds: string[]): Promise<Map<string, string[]>> {
    const rows: { room_id: string; a: string; b: string }[] = await this.db.query(
      `SELECT room_id, a_id::text AS a, b_id::text AS b FROM pair_rooms WHERE a_id = ANY($1::uuid[]) OR b_id = ANY($1::uuid[])`,
      [identityIds],
    );
    const rooms = new Map(identityIds.map((id) => [id, [] as string[]]));
    for (const row of rows) for (const member of [row.a, row.b]) rooms.get(member)?.push(row.room_id);
    return rooms;
  }

  /** A replay (same idempotency key) keeps its mark through the spread (an own symbol property). */
  async post(me: Principal, room: PairRoom, body: string, idempotencyKey?: string): Promise<Posted & { room_id: string }> {
    const message = await this.messaging.post({
      streams: [this.rooms.key(room.room_id)], pairRoom: room.room_id, sender: { id: null, name: me.name }, body,
      idempotencyKey, principal: `pair:${me.id}`,
    });
    return { ...message, room_id: room.room_id };
  }

  async history(roomId: string, query: HistoryQuery): Promise<Page<Message & { room_id: string }>> {
    const page = await this.rooms.history(roomId, query);
    return { ...page, items: page.items.map((m) => ({ ...m, room_id: roomId })) };
  }

  /** The identity's rooms, newest first, keyset-paged on (created_at in µs, room_id). */
  async calls(me: Principal, limit: number, cursor?: string): Promise<Page<PairCall>> {
    const params: unknown[] = [me.id, limit + 1];
    let after = "";
    if (cursor !== undefined) {
      const [at, roomId] = decodeCursor(cursor, 2, CALL_CURSOR);
      params.push(at, roomId);
      after = `AND (r.at, r.room_id) < ($3::bigint, $4)`;
    }
    const rows: { room_id: string; public_id: string; username: string; created_at: Date; at: string }[] = await this.db.query(
      `SELECT r.room_id, u.public_id, u.username, r.created_at, r.at::text AS at FROM
         (SELECT room_id, a_id, b_id, created_at, (extract(epoch FROM created_at) * 1000000)::bigint AS at
          FROM pair_rooms WHERE a_id = $1 OR b_id = $1) AS r
       JOIN pair_users u ON u.id = CASE WHEN r.a_id = $1 THEN r.b_id ELSE r.a_id END
       WHERE true ${after}
       ORDER BY r.at DESC, r.room_id DESC LIMIT $2`,
      params,
    );
    return toPage(
      rows,
      limit,
      (r) => ({ roomId: r.room_id, with: { publicId: r.public_id.trim(), username: r.username }, created_at: r.created_at.toISOString() }),
      (r) => encodeCursor([r.at, r.room_id]),
    );
  }

  /** Deletes the identity, its rooms and their messages; its publicId stays issued. Returns the rooms and their other members. */
  async remove(me: Principal): Promise<{ roomId: string; members: string[] }[]> {
    return this.db.transaction(async (m) => {
      const rooms: PairRoom[] = await m.query(`SELECT * FROM pair_rooms WHERE a_id = $1 OR b_id = $1`, [me.id]);
      for (const r of rooms) await this.rooms.delete(m, r.room_id);
      await m.query(`DELETE FROM pair_rooms WHERE a_id = $1 OR b_id = $1`, [me.id]);
      await m.query(`DELETE FROM pair_users WHERE id = $1`, [me.id]);
      return rooms.map((r) => ({ roomId: r.room_id, members: [r.a_id, r.b_id] }));
    });
  }
}
