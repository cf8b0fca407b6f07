import type { EntityManager } from "typeorm";
import type { Page } from "../../core/pagination";
import type { StreamSource } from "../../realtime/stream-relay";
import type { HistoryQuery, Message, MessagingService } from "./messaging.service";

/**
 * One kind of message stream (channels, one user's direct messages, conference rooms,
 * pair rooms), owned by the module that uses it. A stream is one ordered conversation;
 * its key (`<kind>:<id>`) names it in message_streams, in bus events and in the relay,
 * and `where` says which messages belong to it.
 */
export class MessageStreamKind {
  /** What the relay reads this kind from. */
  readonly source: StreamSource<Message>;

  constructor(
    readonly kind: string,
    /** The SQL condition (on table alias m) selecting a stream's messages, with $1 its id. */
    private readonly where: string,
    private readonly messaging: MessagingService,
  ) {
    this.source = {
      kind,
      lastId: (key) => messaging.lastId(key),
      between: (key, after, upTo, limit) => messaging.between(where, this.idOf(key), after, upTo, limit),
    };
  }

  key(id: string): string {
    return `${this.kind}:${id}`;
  }

  /** A stream's messages, paged as `MessagingService.history`. */
  history(id: string, query: HistoryQuery): Promise<Page<Message>> {
    return this.messaging.history(this.where, [id], query);
  }

  /** Deletes a stream's messages and its position, in the caller's transaction. */
  async delete(manager: EntityManager, id: string): Promise<void> {
    await manager.query(`DELETE FROM messages AS m WHERE ${this.where}`, [id]);
    await manager.query(`DELETE FROM message_streams WHERE key = $1`, [this.key(id)]);
  }

  private idOf(key: string): string {
    return key.slice(this.kind.length + 1);
  }
}
