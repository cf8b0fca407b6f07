import { DomainError } from "../core/errors";
import type { Logger } from "../logger";
import type { Bus } from "./bus";
import type { MessageMetrics } from "./metrics";
import { STREAMS_TOPIC, type Cancellation, type Listener, type ListenOptions, type ResumePoint, type StreamEvent, type StreamItem, type StreamSource } from "./streams";

export * from "./streams";

interface StreamState {
  /** Id of the last message delivered to this process' listeners; null until read from the database. */
  last: bigint | null;
  listeners: Set<Listener>;
  /** listen() calls still replaying: the state must outlive them. */
  joining: number;
  /** Live delivery, repairs and the end of each replay run in this chain, one step at a time. */
  chain: Promise<void>;
}

const REPLAY_PAGE = 500;
const REPAIR_ATTEMPTS = 5;
const REPAIR_RETRY_MS = 1000;

/**
 * Delivers each stream's items to this process' listeners exactly once and in id
 * order, whatever the bus does. Every message event names the id it follows in each
 * stream; when that is not the last one delivered here (an event lost or overtaken on
 * the way), the missing messages are read from the database first. A reconnecting
 * client's replay reads the bulk of its history beside live delivery, then its tail and
 * its joining in the stream's chain, so nothing is skipped or doubled at the seam and
 * other listeners are not held up.
 */
export class StreamRelay {
  private readonly streams = new Map<string, StreamState>();

  private readonly sources = new Map<string, StreamSource>();

  constructor(
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly metrics: MessageMetrics,
  ) {}

  start(): Promise<void> {
    this.bus.onResync(() => this.resync());
    return this.bus.subscribe(STREAMS_TOPIC, (event) => this.receive(event as StreamEvent));
  }

  /**
   * Delivers what this process' listeners missed while the bus lost events (Redis
   * unreachable): each live stream's last id is read from the database and what lies
   * beyond the last one delivered here is repaired, even if no later event comes. The
   * last ids are asked for all at once (the message sources batch them, a query per
   * thousand streams); the repairs, rare, go one stream after another.
   */
  async resync(): Promise<void> {
    const live = [...this.streams].filter(([, stream]) => stream.last !== null);
    const lasts = await Promise.all(
      live.map(([key]) =>
        this.source(key)
          .lastId(key)
          .then(BigInt, () => null), // unreadable now: the next resync tries again
      ),
    );
    for (const [i, [key, stream]] of live.entries()) {
      const last = lasts[i];
      if (last === null || stream.last === null || last <= stream.last || this.streams.get(key) !== stream) continue;
      await this.enqueue(key, stream, async () => {
        if (stream.last === null || last <= stream.last) return;
        const { items } = await this.replay(key, stream.last, last, stream.listeners);
        this.metrics.repaired(items);
        stream.last = last;
      }).catch(() => undefined); // logged by enqueue; the next resync tries again
    }
  }

  /** A module adds the kinds of stream it owns. */
  addSource(source: StreamSource): void {
    if (this.sources.has(source.kind)) throw new Error(`two sources for streams of kind "${source.kind}"`);
    this.sources.set(source.kind, source);
  }

  /** Tells every process (this one included) that the item committed. */
  publish<T extends StreamItem>(event: StreamEvent<T>): Promise<void> {
    return this.bus.publish(STREAMS_TOPIC, event);
  }

  private source(key: string): StreamSource {
    const source = this.sources.get(key.slice(0, key.indexOf(":")));
    if (!source) throw new Error(`no source for stream ${key}`);
    return source;
  }

  /**
   * Where a client starts following: after the id it last saw, or after the stream's
   * last committed message, read before the client is told it is following (so a
   * message committed once it knows cannot be taken for history). An id beyond the
   * stream's end is a client's mistake: 400.
   */
  async resumePoint(key: string, after: string | undefined): Promise<ResumePoint> {
    const last = await this.source(key).lastId(key);
    if (after === undefined) return { after: last, last };
    if (BigInt(after) > BigInt(last))
      throw new DomainError(400, `Nothing with id ${after} exists in this stream yet; its newest is ${last}.`, {
        errors: [{ field: "after", message: "beyond the newest message" }],
      });
    return { after, last };
  }

  /**
   * Adds a listener to a stream: it receives the messages committed after `after`, those
   * already committed replayed first. Resolves with the function that removes it.
   */
  async listen<T extends StreamItem>(key: string, listener: Listener<T>, options: ListenOptions): Promise<() => void> {
    return this.attach(key, listener as Listener, options);
  }

  private async attach(key: string, listener: Listener, options: ListenOptions): Promise<() => void> {
    const { from, signal, ready } = options;
    let stream = this.streams.get(key);
    if (!stream) {
      stream = { last: null, listeners: new Set(), joining: 0, chain: Promise.resolve() };
      this.streams.set(key, stream);
    }
    const state = stream;
    let attached: Listener | null = null;
    const remove = () => {
      if (attached) state.listeners.delete(attached);
      if (state.listeners.size === 0 && state.joining === 0 && this.streams.get(key) === state) this.streams.delete(key);
    };
    state.joining += 1;
    try {
      // A stream new to this process starts at the position just read: an event that shows
      // a gap after it is repaired from the database like any other.
      state.last ??= BigInt(from.last);
      // The bulk beside live delivery, at the pace the client takes it...
      let { cursor } = await this.replay(key, BigInt(from.after), state.last, [listener], signal, ready);
      await this.enqueue(key, state, async () => {
        if (signal?.aborted) return;
        // ...then what arrived meanwhile, and joining, in the stream's chain.
        ({ cursor } = await this.replay(key, cursor, state.last!, [listener], signal));
        // This process may not have delivered up to `from.after` yet: nothing up to it again.
        const floor = cursor > state.last! ? cursor : null;
        attached =
          floor === null
            ? listener
            : (item, json) => {
                if (BigInt(item.id) > floor) listener(item, json);
              };
        state.listeners.add(attached);
      });
    } finally {
      state.joining -= 1;
      if (!attached) remove();
    }
    return remove;
  }

  private receive(event: StreamEvent, attempt = 1): void {
    const id = BigInt(event.item.id);
    let json: string | undefined;
    for (const { key, previous } of event.streams) {
      const stream = this.streams.get(key);
      if (!stream) continue;
      this.enqueue(key, stream, async () => {
        // Not started yet, or delivered already (through a replay or a repair).
        if (stream.last === null || id <= stream.last) return;
        if (BigInt(previous) !== stream.last) {
          // Something before it has not arrived here: read what is missing.
          // The live set: a listener removed while the rows are read must not get them.
          const { items } = await this.replay(key, stream.last, id - 1n, stream.listeners);
          this.metrics.repaired(items);
        }
        json ??= JSON.stringify(event.item);
        this.deliver(stream.listeners, event.item, json);
        stream.last = id;
      }).catch(() => {
        // Logged by enqueue. The repair read failed: try again, or the message would wait
        // for the stream's next event.
        if (attempt < REPAIR_ATTEMPTS) setTimeout(() => this.receive(event, attempt + 1), REPAIR_RETRY_MS).unref();
      });
    }
  }

  /**
   * Sends the stream's messages with after < id <= upTo to the listeners, page by page
   * until done or cancelled. Returns the id it got to and how many items it sent.
   */
  private async replay(
    key: string,
    after: bigint,
    upTo: bigint,
    listeners: Iterable<Listener>,
    signal?: Cancellation,
    ready?: () => Promise<void> | undefined,
  ): Promise<{ cursor: bigint; items: number }> {
    let cursor = after;
    let items = 0;
    while (cursor < upTo && !signal?.aborted) {
      const page = await this.source(key).between(key, cursor.toString(), upTo.toString(), REPLAY_PAGE);
      for (const item of page) {
        const wait = ready?.();
        if (wait) await wait;
        if (signal?.aborted) return { cursor, items };
        this.deliver(listeners, item, JSON.stringify(item));
        cursor = BigInt(item.id);
        items += 1;
      }
      if (page.length < REPLAY_PAGE) return { cursor: upTo, items };
    }
    return { cursor, items };
  }

  private deliver(listeners: Iterable<Listener>, item: StreamItem, json: string): void {
    for (const listener of listeners) {
      try {
        listener(item, json);
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
