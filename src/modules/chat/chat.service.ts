import { randomUUID } from "node:crypto";
import type { DataSource, EntityManager } from "typeorm";
import { FOREIGN_KEY_VIOLATION, isUniqueViolation, postgresCode } from "../../db/errors";
import { conflict, notFound } from "../../core/errors";
import { batchedReads } from "../../db/batch";
import { pageByName } from "../../db/paging";
import type { Page } from "../../core/pagination";
import type { UserDeletedHook } from "../../core/module";
import type { AccountsService, UserEntity } from "../accounts";
import type { HistoryQuery, Message, MessageStreamKind, MessagingService, Posted } from "../messaging";
import { ChannelEntity } from "./channel.entity";

export interface Channel {
  id: string;
  name: string;
  created_by: string;
  created_at: string;
}

export function presentChannel(channel: ChannelEntity): Channel {
  return { id: channel.id, name: channel.name, created_by: channel.createdBy, created_at: channel.createdAt.toISOString() };
}

/** Named channels and direct messages, on the shared messaging core. */
export class ChatService {
  /** `channel:<id>`: a channel's messages. */
  readonly channels: MessageStreamKind;
  /** `dm:<user id>`: every direct message a user sends or receives. */
  readonly directs: MessageStreamKind;

  constructor(
    private readonly dataSource: DataSource,
    private readonly messaging: MessagingService,
    private readonly accounts: AccountsService,
  ) {
    this.channels = messaging.streamKind("channel", "m.channel_id = $1");
    this.directs = messaging.streamKind("dm", "m.recipient_id IS NOT NULL AND (m.recipient_id = $1 OR m.sender_id = $1)");
  }

  /** Channels by name, case-insensitively. */
  listChannels(limit: number, cursor?: string): Promise<Page<Channel>> {
    const query = this.dataSource.getRepository(ChannelEntity).createQueryBuilder("c");
    return pageByName(query, "c.name", { limit, cursor }, presentChannel);
  }

  async createChannel(creator: UserEntity, name: string): Promise<Channel> {
    const channel = this.dataSource.getRepository(ChannelEntity).create({
      id: randomUUID(),
      name,
      createdBy: creator.username,
      createdAt: new Date(),
    });
    try {
      await this.dataSource.getRepository(ChannelEntity).insert(channel);
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict(`A channel named "${name}" exists already.`);
      throw error;
    }
    return presentChannel(channel);
  }

  async getChannel(id: string): Promise<Channel> {
    return presentChannel(await this.requireChannel(this.dataSource.manager, id));
  }

  /** 404 unless the channel exists (batched: a connect storm subscribes thousands of sockets at once). */
  async assertChannelExists(id: string): Promise<void> {
    if (!(await this.channelExists(id))) throw notFound(`No channel has id ${id}.`);
  }

  private readonly channelExists = batchedReads<string, boolean>(async (ids) => {
    const rows: { id: string }[] = await this.dataSource.query(`SELECT id FROM channels WHERE id = ANY($1::uuid[])`, [ids]);
    const found = new Set(rows.map((row) => row.id));
    return ids.map((id) => found.has(id));
  });

  async requireChannel(manager: EntityManager, id: string): Promise<ChannelEntity> {
    const channel = await manager.findOneBy(ChannelEntity, { id });
    if (!channel) throw notFound(`No channel has id ${id}.`);
    return channel;
  }

  postToChannel(sender: UserEntity, channelId: string, body: string, idempotencyKey?: string): Promise<Posted> {
    const post = this.messaging.post({
      streams: [this.channels.key(channelId)],
      channelId,
      sender: { id: sender.id, name: sender.username },
      body,
      idempotencyKey,
    });
    return notFoundIfGone(post, `No channel has id ${channelId}.`);
  }

  async channelHistory(channelId: string, query: HistoryQuery): Promise<Page<Message>> {
    // One query a page: a message of the channel proves the channel exists (messages
    // reference it), so only an empty page asks whether the channel is there at all.
    const page = await this.channels.history(channelId, query);
    if (page.items.length === 0) await this.requireChannel(this.dataSource.manager, channelId);
    return page;
  }

  async sendDirect(sender: UserEntity, to: string, body: string, idempotencyKey?: string): Promise<Posted> {
    const recipient = await this.accounts.requireUser(this.dataSource.manager, to);
    const post = this.messaging.post({
      streams: [this.directs.key(sender.id), this.directs.key(recipient.id)],
      sender: { id: sender.id, name: sender.username },
      recipient: { id: recipient.id, name: recipient.username },
      body,
      idempotencyKey,
    });
    // The recipient may have been deleted since it was looked up.
    return notFoundIfGone(post, `No user is named "${to}".`);
  }

  /** A deleted user's direct messages go with them, both ways; their channel messages stay, under their name. */
  readonly deleteDirectMessages: UserDeletedHook = (manager, user) => this.directs.delete(manager, user.id);

  /** The caller's direct messages, or only those exchanged with `withUsername`. */
  async directHistory(user: UserEntity, withUsername: string | undefined, query: HistoryQuery): Promise<Page<Message>> {
    if (withUsername === undefined) return this.directs.history(user.id, query);
    const other = await this.accounts.requireUser(this.dataSource.manager, withUsername);
    return this.messaging.history(
      "((m.sender_id = $1 AND m.recipient_id = $2) OR (m.sender_id = $2 AND m.recipient_id = $1))",
      [user.id, other.id],
      query,
    );
  }
}

/** A foreign-key violation on posting means what the message refers to does not exist (any more). */
async function notFoundIfGone<T>(post: Promise<T>, detail: string): Promise<T> {
  try {
    return await post;
  } catch (error) {
    if (postgresCode(error) === FOREIGN_KEY_VIOLATION) throw notFound(detail);
    throw error;
  }
}
