import { createHash } from "node:crypto";
import type { DataSource } from "typeorm";
import { conflict } from "../../core/errors";
import { batchedReads } from "../../db/batch";
import { toPage, type Page } from "../../core/pagination";
import type { PrincipalLimiter } from "../../http/post-limit";
import type { MessageMetrics } from "../../realtime/metrics";
import type { StreamEvent, StreamRelay } from "../../realtime/stream-relay";
import { MessageStreamKind } from "./streams";

/** A message as the API shows it. */
export interface Message {
  id: string;
  channel_id: string | null;
  room_guid: string | null;
  sender: string;
  recipient: string | null;
  body: string;
  created_at: string;
}

export interface NewMessage {
  /** The streams the message belongs to (a DM: the sender's and the recipient's). */
  streams: string[];
  /** Extra columns of the messages table that tie it to its conversation (a module's own). */
  channelId?: string;
  roomGuid?: string;
  /** A pair room's id (the pair module's own column). */
  pairRoom?: string;
  sender: { id: string | null; name: string };
  recipient?: { id: string; name: string };
  body: string;
  /**
   * Makes the post safe to retry (API.md, General): a second post with the same key by
   * the same principal within 24 hours posts nothing and answers with the first message.
   */
  idempotencyKey?: string;
  /** Who posts, when the sender has no account id (a pair identity): its idempotency keys and posting limit. */
  principal?: string;
}

/** Set (under a symbol, so never serialised) on a message that answers a replayed post. */
export const REPLAYED: unique symbol = Symbol("replayed");
export type Posted = Message & { [REPLAYED]?: true };

/** Whether a post was answered from its idempotency key rather than posted. */
export function isReplay(message: object): boolean {
  return (message as Posted)[REPLAYED] === true;
}

export interface HistoryQuery {
  before?: string;
  after?: string;
  limit: number;
}

/**
 * A timestamp as the API writes it (`2026-12-04T01:23:30.570Z`), formatted by the
 * database: parsing into a Date and formatting again in JavaScript was 11 % of the
 * server's CPU on a history page (docs/benchmarks.md), and every path that shows a
 * message uses this one expression, so the same message always reads the same.
 */
const isoUtc = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const COLUMNS = `m.id::text AS id, m.channel_id, m.room_guid, m.sender, m.recipient, m.body, ${isoUtc("m.created_at")} AS created_at`;

/**
 * The one messaging core: channels, direct messages, conference rooms and pair rooms all
 * post and read through it. A message is acknowledged only after it commits, and it is
 * published only then.
 */
export class MessagingService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly relay: StreamRelay,
    /** RATE_LIMIT_POSTS_PER_MINUTE: every message kind, over every door, counts. */
    private readonly postLimit: PrincipalLimiter,
    private readonly metrics: MessageMetrics,
  ) {}

  /** A kind of message stream for a module to own (see MessageStreamKind). */
  streamKind(kind: string, where: string): MessageStreamKind {
    return new MessageStreamKind(kind, where, this);
  }

  /**
   * Commits the message, then publishes it. A channel or recipient that does not exist
   * (any more) fails the insert's foreign key: Postgres' 23503.
   */
  async post(input: NewMessage): Promise<Posted> {
    await this.postLimit.consume(input.principal ?? input.sender.id ?? input.sender.name);
    const keys = [...new Set(input.streams)];
    const args = [
      keys,
      input.channelId ?? null,
      input.roomGuid ?? null,
      input.sender.id,
      input.sender.name,
      input.recipient?.id ?? null,
      input.recipient?.name ?? null,
      input.body,
      input.pairRoom ?? null,
    ];
    // One statement, so its own transaction: see the post_message and idempotency migrations.
    const [row]: { o_id: string | null; o_created_at: string | null; o_previous: Record<string, string> | null; o_outcome?: string }[] =
      input.idempotencyKey === undefined
        ? await this.dataSource.query(`SELECT o_id, ${isoUtc("o_created_at")} AS o_created_at, o_previous FROM post_message($1::varchar[], $2, $3, $4, $5, $6, $7, $8, $9)`, args)
        : await this.dataSource.query(
            `SELECT o_id, ${isoUtc("o_created_at")} AS o_created_at, o_previous, o_outcome FROM post_message_once($1, $2, $3, $4::varchar[], $5, $6, $7, $8, $9, $10, $11, $12)`,
            [input.principal ?? input.sender.id ?? input.sender.name, input.idempotencyKey, fingerprint(keys, input), ...args],
          );
    if (row.o_outcome === "conflict" || row.o_id === null || row.o_created_at === null)
      // null: the first message was deleted between the key's claim and its read (a race).
      throw conflict("This idempotency key was used for another post (a different body or conversation).");
    const message: Posted = {
      id: row.o_id,
      channel_id: input.channelId ?? null,
      room_guid: input.roomGuid ?? null,
      sender: input.sender.name,
      recipient: input.recipient?.name ?? null,
      body: input.body,
      created_at: row.o_created_at,
    };
    // A replay was published when it was first posted (and repaired, had that failed).
    if (row.o_outcome === "replayed") return Object.assign(message, { [REPLAYED]: true as const });
    this.metrics.posted(keys[0]);
    const event: StreamEvent<Message> = { item: message, streams: keys.map((key) => ({ key, previous: row.o_previous![key] })) };
    await this.relay.publish(event);
    return message;
  }

  /**
   * Newest first (before `before`, when given); with `after`, the messages after it,
   * oldest first (and before `before`, when both are given).
   */
  async history(where: string, params: unknown[], query: HistoryQuery): Promise<Page<Message>> {
    const values = [...params];
    const bound = (value: string) => `$${values.push(value)}`;
    const conditions = [where];
    if (query.after !== undefined) conditions.push(`m.id > ${bound(query.after)}`);
    if (query.before !== undefined) conditions.push(`m.id < ${bound(query.before)}`);
    const order = query.after !== undefined ? "ASC" : "DESC";
    const sql = `SELECT ${COLUMNS} FROM messages m WHERE ${conditions.join(" AND ")} ORDER BY m.id ${order} LIMIT ${bound(String(query.limit + 1))}`;
    const rows: Message[] = await this.dataSource.query(sql, values);
    // The cursor is a plain message id: clients pass it back as `before` or `after`.
    return toPage(rows, query.limit, (row) => row, (row) => row.id);
  }

  /**
   * The id of the stream's last committed message ("0" when it has none). Batched: a
   * last id read a turn later is only ever newer, still a valid place to resume from.
   */
  readonly lastId = batchedReads<string, string>(async (keys) => {
    const rows: { key: string; last_id: string }[] = await this.dataSource.query(
      `SELECT key, last_id::text AS last_id FROM message_streams WHERE key = ANY($1::varchar[])`,
      [keys],
    );
    const found = new Map(rows.map((row) => [row.key, row.last_id]));
    return keys.map((key) => found.get(key) ?? "0");
  });

  /** The messages matching `where` ($1 = `id`) with after < id <= upTo, oldest first, at most `limit`. */
  async between(where: string, id: string, after: string, upTo: string, limit: number): Promise<Message[]> {
    return this.dataSource.query(
      `SELECT ${COLUMNS} FROM messages m WHERE ${where} AND m.id > $2 AND m.id <= $3 ORDER BY m.id ASC LIMIT $4`,
      [id, after, upTo, limit],
    );
  }
}

/** What a post is, for telling a retry from another post under the same key. */
function fingerprint(keys: string[], input: NewMessage): string {
  const what = [[...keys].sort(), input.channelId ?? null, input.roomGuid ?? null, input.pairRoom ?? null, input.recipient?.id ?? null, input.body];
  return createHash("sha256").update(JSON.stringify(what)).digest("hex");
}
