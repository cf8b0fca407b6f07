import type { Config } from "../config";
import type { Logger } from "../logger";
import { RedisConnection, redisOptions, type RedisOptions } from "./redis-client";

export type BusHandler = (event: unknown) => void;

/**
 * How processes tell each other that something committed. Narrow on purpose: state that
 * must be shared lives in the database; the bus only says "look, this changed".
 * Delivery is at most once: consumers that need every event (message streams, ended
 * credentials) re-read what they missed from the database when told to resync.
 */
export interface Bus {
  /** Sends the event on its way and resolves at once: a publisher never waits on the bus. */
  publish(topic: string, event: unknown): Promise<void>;
  /** Handlers live as long as the bus. */
  subscribe(topic: string, handler: BusHandler): Promise<void>;
  /** Whether events reach the other processes now (always, in one process). */
  readonly up: boolean;
  /**
   * Runs when events may have been lost: periodically while the bus is down, and once it
   * is back (on this process or another). Handlers re-read from the database.
   */
  onResync(handler: () => Promise<void>): void;
  close(): Promise<void>;
}

/** One process: events go straight to this process' handlers, in publish order. */
export class LocalBus implements Bus {
  private readonly handlers = new Map<string, BusHandler[]>();
  readonly up = true;

  async publish(topic: string, event: unknown): Promise<void> {
    deliverLocally(this.handlers, topic, event);
  }

  async subscribe(topic: string, handler: BusHandler): Promise<void> {
    this.handlers.set(topic, [...(this.handlers.get(topic) ?? []), handler]);
  }

  /** Nothing is ever lost in one process. */
  onResync(): void {}

  async close(): Promise<void> {
    this.handlers.clear();
  }
}

/** A JSON round trip, as on Redis, so no subscriber can share or mutate the publisher's object. */
function deliverLocally(handlers: Map<string, BusHandler[]>, topic: string, event: unknown): void {
  const payload = JSON.stringify(event);
  for (const handler of handlers.get(topic) ?? []) queueMicrotask(() => handler(JSON.parse(payload)));
}

export interface RedisBusOptions extends RedisOptions {
  prefix: string;
  /** While down, how often consumers are told to resync (BUS_RESYNC_SECONDS). */
  resyncMs: number;
}

/** The channel on which a process that got its connection back tells every other to resync. */
const RESYNC_CHANNEL = "bus:resync";

/**
 * Many processes: Redis pub/sub, one publishing and one subscribing connection. Redis is
 * optional at every moment: while it is unreachable, a publish reaches this process'
 * own handlers (so its clients keep getting what is posted here), consumers resync from
 * the database every `resyncMs`, and once it is back every process resyncs once more.
 */
export class RedisBus implements Bus {
  private readonly handlers = new Map<string, BusHandler[]>();
  private readonly resyncHandlers: Array<() => Promise<void>> = [];
  private resyncing: Promise<void> | null = null;
  private resyncAgain = false;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly publisher: RedisConnection,
    private readonly subscriber: RedisConnection,
    private readonly options: RedisBusOptions,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => {
      if (!this.up) this.resync();
    }, options.resyncMs);
    this.timer.unref();
    // Back after a loss: resubscribed (node-redis does so before "ready"), so catch up here; and tell the others.
    subscriber.onUp(() => this.resync());
    publisher.onUp(() => this.send(RESYNC_CHANNEL, "{}"));
  }

  static async connect(options: RedisBusOptions, log: Logger): Promise<RedisBus> {
    const publisher = new RedisConnection(options, log, "bus publisher");
    const subscriber = new RedisConnection(options, log, "bus subscriber");
    const bus = new RedisBus(publisher, subscriber, options, log);
    await Promise.all([publisher.connect(), subscriber.connect()]);
    await bus.listen(RESYNC_CHANNEL, () => bus.resync());
    return bus;
  }

  get up(): boolean {
    return this.publisher.up && this.subscriber.up;
  }

  async publish(topic: string, event: unknown): Promise<void> {
    // Redis unreachable: this process' own handlers still hear it; the others resync.
    if (!this.publisher.up) return deliverLocally(this.handlers, topic, event);
    this.send(topic, JSON.stringify(event));
  }

  /** Not awaited: commands on one connection keep their order, and a failure is repaired by a resync. */
  private send(topic: string, payload: string): void {
    this.publisher.command((client) => client.publish(this.options.prefix + topic, payload)).catch((error: unknown) => {
      // What was published has committed already; subscribers repair gaps from the database.
      this.log.warn({ err: error, topic }, "redis bus publish failed");
    });
  }

  async subscribe(topic: string, handler: BusHandler): Promise<void> {
    const existing = this.handlers.get(topic);
    if (existing) {
      existing.push(handler);
      return;
    }
    this.handlers.set(topic, [handler]);
    await this.listen(topic, (payload) => {
      let event: unknown;
      try {
        event = JSON.parse(payload);
      } catch (error) {
        this.log.error({ err: error, topic }, "redis bus received invalid JSON");
        return;
      }
      for (const h of this.handlers.get(topic) ?? []) h(event);
    });
  }

  private listen(topic: string, listener: (payload: string) => void): Promise<void> {
    return this.subscriber.subscribe((client) => client.subscribe(this.options.prefix + topic, listener));
  }

  onResync(handler: () => Promise<void>): void {
    this.resyncHandlers.push(handler);
  }

  /** Runs the resync handlers, one run at a time: a request during a run makes one more run. */
  private resync(): void {
    if (this.resyncing) {
      this.resyncAgain = true;
      return;
    }
    this.resyncing = (async () => {
      do {
        this.resyncAgain = false;
        for (const handler of this.resyncHandlers)
          await handler().catch((error: unknown) => this.log.error({ err: error }, "bus resync failed"));
      } while (this.resyncAgain);
    })().finally(() => (this.resyncing = null));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.handlers.clear();
    this.resyncHandlers.length = 0;
    await this.resyncing;
    await Promise.allSettled([this.subscriber.close(), this.publisher.close()]);
  }
}

export async function createBus(redis: RedisBusOptions | null, log: Logger): Promise<Bus> {
  return redis ? RedisBus.connect(redis, log) : new LocalBus();
}

/** The bus' Redis settings from the configuration; null without REDIS_URL (one process). */
export function busOptions(config: Pick<Config, "redisUrl" | "redisPrefix" | "redisCommandTimeoutMs" | "busResyncSeconds">): RedisBusOptions | null {
  const redis = redisOptions(config);
  return redis && { ...redis, prefix: config.redisPrefix, resyncMs: config.busResyncSeconds * 1000 };
}
