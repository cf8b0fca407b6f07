import type { Logger } from "../logger";
import type { Bus } from "./bus";
import { MESSAGES_TOPIC, type Message, type MessageEvent, type MessagingService } from "../modules/messaging/messaging.service";

/** Receives a stream's messages in order; `json` is the message serialized once for all listeners. */
export type Listener = (message: Message, json: string) => void;

interface StreamState {
  /** Id of the last message delivered to this process' listeners; null until read from the database. */
  last: bigint | null;
  listeners: Set<Listener>;
  /** Everything touching the stream runs in this chain, one step at a time. */
  chain: Promise<void>;
}

const REPLAY_PAGE = 500;

/**
 * Delivers each stream's messages to this process' listeners exactly once and in id
 * order, whatever the bus does. Every message event names the id it follows in each
 * stream; when that is not the last one delivered here (an event lost or overtaken on
 * the way), the missing messages are read from the database first. Replays for
 * reconnecting clients run in the same per-stream chain, so none is skipped or doubled
 * at the seam between history and live delivery.
 */
export class StreamRelay {
  private readonly streams = new Map<string, StreamState>();

  constructor(
    private readonly bus: Bus,
    private readonly messaging: MessagingService,
    private readonly log: Logger,
  ) {}

  start(): Promise<void> {
    return this.bus.subscribe(MESSAGES_TOPIC, (event) => this.receive(event as MessageEvent));
  }

  /**
   * Adds a listener to a stream. With `after`, it first receives the messages committed
   * after that id. Resolves with the function that removes it.
   */
  async listen(key: string, listener: Listener, after?: string): Promise<() => void> {
    let stream = this.streams.get(key);
    if (!stream) {
      stream = { last: null, listeners: new Set(), chain: Promise.resolve() };
      this.streams.set(key, stream);
    }
    const state = stream;
    const remove = () => {
      state.listeners.delete(listener);
      if (state.listeners.size === 0 && this.streams.get(key) === state) this.streams.delete(key);
    };
    try {
      await this.enqueue(key, state, async () => {
        // Messages committed before this point are history; later ones arrive as events.
        state.last ??= BigInt(await this.messaging.lastId(key));
        if (after !== undefined) await this.replay(key, BigInt(after), state.last, [listener]);
        state.listeners.add(listener);
      });
    } catch (error) {
      remove();
      throw error;
    }
    return remove;
  }

  private receive(event: MessageEvent): void {
    const id = BigInt(event.message.id);
    let json: string | undefined;
    for (const { key, previous } of event.streams) {
      const stream = this.streams.get(key);
      if (!stream) continue;
      this.enqueue(key, stream, async () => {
        // Not started yet, or delivered already (through a replay or a repair).
        if (stream.last === null || id <= stream.last) return;
        if (BigInt(previous) !== stream.last) {
          // Something before it has not arrived here: read what is missing.
          await this.replay(key, stream.last, id - 1n, [...stream.listeners]);
        }
        json ??= JSON.stringify(event.message);
        this.deliver(stream.listeners, event.message, json);
        stream.last = id;
      }).catch(() => undefined); // logged by enqueue
    }
  }

  /** Sends the stream's messages with after < id <= upTo to the listeners. */
  private async replay(key: string, after: bigint, upTo: bigint, listeners: Listener[]): Promise<void> {
    let cursor = after;
    while (cursor < upTo) {
      const page = await this.messaging.between(key, cursor.toString(), upTo.toString(), REPLAY_PAGE);
      for (const message of page) this.deliver(listeners, message, JSON.stringify(message));
      if (page.length < REPLAY_PAGE) break;
      cursor = BigInt(page[page.length - 1].id);
    }
  }

  private deliver(listeners: Iterable<Listener>, message: Message, json: string): void {
    for (const listener of listeners) {
      try {
        listener(message, json);
      } catch (error) {
        this.log.error({ err: error }, "stream listener failed");
      }
    }
  }

  private enqueue(key: string, stream: StreamState, step: () => Promise<void>): Promise<void> {
    const run = stream.chain.then(step);
    stream.chain = run.catch((error: unknown) => this.log.error({ err: error, stream: key }, "stream relay step failed"));
    return run;
  }
}
