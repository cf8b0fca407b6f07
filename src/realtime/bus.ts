import { createClient } from "redis";
import type { Logger } from "../logger";

export type BusHandler = (event: unknown) => void;

/**
 * How processes tell each other that something committed. Narrow on purpose: state that
 * must be shared lives in the database; the bus only says "look, this changed".
 * Delivery is at most once: consumers that need every event (message streams) repair
 * gaps from the database.
 */
export interface Bus {
  publish(topic: string, event: unknown): Promise<void>;
  /** Handlers live as long as the bus. */
  subscribe(topic: string, handler: BusHandler): Promise<void>;
  close(): Promise<void>;
}

/** One process: events go straight to this process' handlers, in publish order. */
export class LocalBus implements Bus {
  private readonly handlers = new Map<string, BusHandler[]>();

  async publish(topic: string, event: unknown): Promise<void> {
    // A JSON round trip, as on Redis, so no subscriber can share or mutate the publisher's object.
    const payload = JSON.stringify(event);
    for (const handler of this.handlers.get(topic) ?? []) queueMicrotask(() => handler(JSON.parse(payload)));
  }

  async subscribe(topic: string, handler: BusHandler): Promise<void> {
    this.handlers.set(topic, [...(this.handlers.get(topic) ?? []), handler]);
  }

  async close(): Promise<void> {
    this.handlers.clear();
  }
}

type RedisClient = ReturnType<typeof createClient>;

/** Many processes: Redis pub/sub, one publishing and one subscribing connection. */
export class RedisBus implements Bus {
  private readonly handlers = new Map<string, BusHandler[]>();

  private constructor(
    private readonly publisher: RedisClient,
    private readonly subscriber: RedisClient,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {}

  static async connect(url: string, log: Logger, prefix = "convene:"): Promise<RedisBus> {
    const publisher = createClient({ url, socket: { connectTimeout: 5000 } });
    const subscriber = publisher.duplicate();
    for (const [name, client] of [["publisher", publisher], ["subscriber", subscriber]] as const)
      client.on("error", (error: Error) => log.warn({ err: error, client: name }, "redis bus connection error"));
    await Promise.all([publisher.connect(), subscriber.connect()]);
    return new RedisBus(publisher, subscriber, prefix, log);
  }

  async publish(topic: string, event: unknown): Promise<void> {
    try {
      await this.publisher.publish(this.prefix + topic, JSON.stringify(event));
    } catch (error) {
      // What was published has committed already; subscribers repair gaps from the database.
      this.log.error({ err: error, topic }, "redis bus publish failed");
    }
  }

  async subscribe(topic: string, handler: BusHandler): Promise<void> {
    const existing = this.handlers.get(topic);
    if (existing) {
      existing.push(handler);
      return;
    }
    this.handlers.set(topic, [handler]);
    await this.subscriber.subscribe(this.prefix + topic, (payload) => {
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

  async close(): Promise<void> {
    this.handlers.clear();
    await Promise.allSettled([this.subscriber.quit(), this.publisher.quit()]);
  }
}

export async function createBus(redisUrl: string | null, log: Logger, prefix?: string): Promise<Bus> {
  return redisUrl ? RedisBus.connect(redisUrl, log, prefix) : new LocalBus();
}
