import { randomUUID } from "node:crypto";
import type { DataSource, EntityManager } from "typeorm";
import { conflict, DomainError, notFound } from "../../core/errors";
import { decodeCursor, encodeCursor, toPage, type Page } from "../../core/pagination";
import type { DeletedUser } from "../../core/module";
import type { AccountsService } from "../accounts";
import type { HistoryQuery, Message, MessageStreamKind, MessagingService, Posted } from "../messaging";

export interface Room {
  guid: string;
  name: string;
  capacity: number;
  host: string;
  participants: string[];
  created_at: string;
}

interface RoomRow {
  seq: string;
  guid: string;
  name: string;
  capacity: number;
  host: string;
  created_at: Date;
}

const SEQ = /^[0-9]{1,18}$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Conference rooms: a host, participants in the order they joined, and a capacity.
 * What is here now serves the accounts routes (a user's rooms; leaving every room when
 * the account is deleted); creating and joining rooms builds on the same tables.
 */
export class RoomsService {
  /** `room:<guid>`: a room's chat. */
  readonly chat: MessageStreamKind;

  constructor(
    private readonly dataSource: DataSource,
    private readonly accounts: AccountsService,
    private readonly messaging: MessagingService,
  ) {
    this.chat = messaging.streamKind("room", "m.room_guid = $1");
  }

  /** The rooms a user is in, in the order they joined them. */
  async roomsOf(username: string, limit: number, cursor?: string): Promise<Page<Room>> {
    const user = await this.accounts.requireUser(this.dataSource.manager, username);
    const after = cursor === undefined ? null : decodeCursor(cursor, 1, SEQ)[0];
    const rows: RoomRow[] = await this.dataSource.query(
      `SELECT p.seq::text AS seq, r.guid, r.name, r.capacity, h.username AS host, r.created_at
         FROM room_participants p
         JOIN rooms r ON r.guid = p.room_guid
         JOIN users h ON h.id = r.host_id
        WHERE p.user_id = $1 AND ($2::bigint IS NULL OR p.seq > $2::bigint)
        ORDER BY p.seq
        LIMIT $3`,
      [user.id, after, limit + 1],
    );
    const participants = await this.participantsOf(rows.slice(0, limit).map((row) => row.guid));
    return toPage(rows, limit, (row) => presentRoom(row, participants.get(row.guid) ?? []), (row) => encodeCursor([row.seq]));
  }


  /** All rooms by guid (or those `member` is in, in join order). */
  async list(member: string | undefined, limit: number, cursor?: string): Promise<Page<Room>> {
    if (member !== undefined) return this.roomsOf(member, limit, cursor);
    const after = cursor === undefined ? null : decodeCursor(cursor, 1, GUID)[0];
    const rows: RoomRow[] = await this.dataSource.query(
      `SELECT r.guid, r.name, r.capacity, h.username AS host, r.created_at, r.guid::text AS seq
         FROM rooms r JOIN users h ON h.id = r.host_id
        WHERE ($1::uuid IS NULL OR r.guid > $1::uuid) ORDER BY r.guid LIMIT $2`,
      [after, limit + 1],
    );
    const participants = await this.participantsOf(rows.slice(0, limit).map((row) => row.guid));
    return toPage(rows, limit, (row) => presentRoom(row, participants.get(row.guid) ?? []), (row) => encodeCursor([row.guid]));
  }

  async create(host: { id: string }, name: string, capacity: number): Promise<Room> {
    const guid = randomUUID();
    await this.dataSource.transaction(async (m) => {
      await m.query(`INSERT INTO rooms (guid, name, capacity, host_id) VALUES ($1, $2, $3, $4)`, [guid, name, capacity, host.id]);
      await m.query(`INSERT INTO room_participants (room_guid, user_id) VALUES ($1, $2)`, [guid, host.id]);
    });
    return this.get(guid);
  }

  async get(guid: string, manager: EntityManager = this.dataSource.manager): Promise<Room> {
    const [row]: RoomRow[] = await manager.query(
      `SELECT r.guid, r.name, r.capacity, h.username AS host, r.created_at, '0' AS seq
         FROM rooms r JOIN users h ON h.id = r.host_id WHERE r.guid = $1`,
      [guid],
    );
    if (!row) throw notFound(`No room has guid ${guid}.`);
    const participants: Array<{ username: string }> = await manager.query(
      `SELECT u.username FROM room_participants p JOIN users u ON u.id = p.user_id WHERE p.room_guid = $1 ORDER BY p.seq`,
      [guid],
    );
    return presentRoom(row, participants.map((p) => p.username));
  }

  /** Runs `step` with the room's row locked (404 when there is none), on the transaction's manager only. */
  locked<T>(guid: string, step: (m: EntityManager, room: Room) => Promise<T>): Promise<T> {
    return this.dataSource.transaction(async (m) => {
      const found: unknown[] = await m.query(`SELECT guid FROM rooms WHERE guid = $1 FOR UPDATE`, [guid]);
      if (found.length === 0) throw notFound(`No room has guid ${guid}.`);
      return step(m, await this.get(guid, m));
    });
  }

  join(guid: string, userId: string, username: string): Promise<Room> {
    return this.locked(guid, async (m, room) => {
      if (room.participants.includes(username)) return room;
      if (room.participants.length >= room.capacity) throw conflict(`The room is full (capacity ${room.capacity}).`);
      await m.query(`INSERT INTO room_participants (room_guid, user_id) VALUES ($1, $2)`, [guid, userId]);
      return this.get(guid, m);
    });
  }

  /** The room after the user left it; null when it closed. */
  leave(guid: string, userId: string, username: string): Promise<Room | null> {
    return this.locked(guid, async (m, room) => {
      if (!room.participants.includes(username)) throw conflict(`${username} is not in this room.`);
      return (await this.leaveRoom(m, guid, userId)) ? this.get(guid, m) : null;
    });
  }

  async userId(manager: EntityManager, username: string): Promise<string> {
    return (await this.accounts.requireUser(manager, username)).id;
  }

  close(guid: string): Promise<void> {
    return this.locked(guid, async (m) => {
      await this.chat.delete(m, guid);
      await m.query(`DELETE FROM rooms WHERE guid = $1`, [guid]);
    });
  }

  async history(guid: string, query: HistoryQuery): Promise<Page<Message>> {
    return this.chat.history(guid, query);
  }

  post(guid: string, sender: { id: string; name: string }, body: string, idempotencyKey?: string): Promise<Posted> {
    return this.messaging.post({ streams: [this.chat.key(guid)], roomGuid: guid, sender, body, idempotencyKey });
  }

  /**
   * Takes the user out of a room whose row the caller has locked: the longest-present
   * participant left becomes host if the user was; a room left empty is closed, and its
   * messages go with it. Returns whether the room is still open.
   */
  async leaveRoom(manager: EntityManager, roomGuid: string, userId: string): Promise<boolean> {
    await manager.query(`DELETE FROM room_participants WHERE room_guid = $1 AND user_id = $2`, [roomGuid, userId]);
    const [next]: Array<{ user_id: string }> = await manager.query(
      `SELECT user_id FROM room_participants WHERE room_guid = $1 ORDER BY seq LIMIT 1`,
      [roomGuid],
    );
    if (next) {
      await manager.query(`UPDATE rooms SET host_id = $2 WHERE guid = $1 AND host_id = $3`, [roomGuid, next.user_id, userId]);
      return true;
    }
    await this.chat.delete(manager, roomGuid);
    await manager.query(`DELETE FROM rooms WHERE guid = $1`, [roomGuid]);
    return false;
  }

  /** Who is in each of these rooms (user ids by room guid); a closed room is absent. */
  async participantIds(guids: string[]): Promise<Map<string, Set<string>>> {
    const rows: { room_guid: string; user_id: string }[] = await this.dataSource.query(
      `SELECT room_guid, user_id FROM room_participants WHERE room_guid = ANY($1::uuid[])`,
      [guids],
    );
    const members = new Map<string, Set<string>>();
    for (const row of rows) {
      if (!members.has(row.room_guid)) members.set(row.room_guid, new Set());
      members.get(row.room_guid)!.add(row.user_id);
    }
    return members;
  }

  /** A deleted user leaves every room, passing on hosting; rooms left empty close. Returns the rooms' guids. */
  async leaveAllRooms(manager: EntityManager, user: DeletedUser): Promise<string[]> {
    // Locked in one order, so deletions of users who share rooms cannot deadlock.
    const rooms: Array<{ guid: string }> = await manager.query(
      `SELECT r.guid FROM rooms r JOIN room_participants p ON p.room_guid = r.guid
        WHERE p.user_id = $1 ORDER BY r.guid FOR UPDATE OF r`,
      [user.id],
    );
    for (const room of rooms) await this.leaveRoom(manager, room.guid, user.id);
    return rooms.map((room) => room.guid);
  }

  /** The room, or null when there is none (any more). */
  async find(guid: string): Promise<Room | null> {
    try {
      return await this.get(guid);
    } catch (error) {
      if (error instanceof DomainError && error.status === 404) return null;
      throw error;
    }
  }

  /** Usernames per room, longest-present first, in one query. */
  private async participantsOf(guids: string[]): Promise<Map<string, string[]>> {
    const byRoom = new Map<string, string[]>();
    if (guids.length === 0) return byRoom;
    const rows: Array<{ room_guid: string; username: string }> = await this.dataSource.query(
      `SELECT p.room_guid, u.username FROM room_participants p JOIN users u ON u.id = p.user_id
        WHERE p.room_guid = ANY($1::uuid[]) ORDER BY p.room_guid, p.seq`,
      [guids],
    );
    for (const row of rows) {
      const list = byRoom.get(row.room_guid) ?? [];
      list.push(row.username);
      byRoom.set(row.room_guid, list);
    }
    return byRoom;
  }
}

function presentRoom(row: RoomRow, participants: string[]): Room {
  return {
    guid: row.guid,
    name: row.name,
    capacity: row.capacity,
    host: row.host,
    participants,
    created_at: new Date(row.created_at).toISOString(),
  };
}
