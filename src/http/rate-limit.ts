import type { Request, RequestHandler } from "express";
import { MemoryStore, rateLimit, type Options, type RateLimitInfo, type Store } from "express-rate-limit";
import { RedisStore } from "rate-limit-redis";
import type { Logger } from "../logger";
import { RedisConnection, type RedisOptions } from "../realtime/redis-client";
import { DomainError } from "../core/errors";

const WINDOW_MS = 60_000;

export function tooMany(resetTime: Date | undefined): DomainError {
  const retryAfter = Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now() + WINDOW_MS) - Date.now()) / 1000));
  return new DomainError(429, `Too many attempts; try again in ${retryAfter} seconds.`, {
    headers: { "Retry-After": String(retryAfter) },
  });
}

/**
 * Where the limiters count. In memory on one process; in Redis when REDIS_URL is set, so
 * every process counts a client's attempts together and PROCESSES=N does not multiply
 * the limit. While Redis is unreachable each process counts alone, never waiting on it.
 */
export interface RateLimitStores {
  /** A store of its own for one limiter. */
  create(name: string): Store;
  close(): Promise<void>;
}

export async function createRateLimitStores(redis: RedisOptions | null, prefix: string, log: Logger): Promise<RateLimitStores> {
  if (!redis) return { create: () => new MemoryStore(), close: async () => undefined };
  const connection = new RedisConnection(redis, log, "rate limits");
  await connection.connect();
  return {
    create: (name) =>
      new SharedOrLocalStore(
        new RedisStore({ sendCommand: (...args: string[]) => connection.command((client) => client.sendCommand(args)), prefix: `${prefix}rate-limit:${name}:` }),
        connection,
        log,
      ),
    close: () => connection.close(),
  };
}

/**
 * Counts in the shared store while it is reachable, in this process' memory while it is
 * not (or when a command fails: the command timeout bounds the wait, and a command that
 * timed out makes the connection count as down until Redis answers again). The shared
 * store is made ready again (its scripts loaded) the first time it is reachable after
 * failing to.
 */
class SharedOrLocalStore implements Store {
  readonly localKeys = false;
  private readonly local = new MemoryStore();
  private options: Options | null = null;
  private sharedReady: Promise<void> | null = null;

  constructor(
    private readonly shared: Store,
    private readonly connection: Pick<RedisConnection, "up">,
    private readonly log: Logger,
  ) {}

  async init(options: Options): Promise<void> {
    this.options = options;
    this.local.init(options);
    await this.use(async () => undefined, async () => undefined);
  }

  get(key: string) {
    return this.use(async () => this.shared.get?.(key), async () => this.local.get(key));
  }

  increment(key: string) {
    return this.use(async () => this.shared.increment(key), async () => this.local.increment(key));
  }

  decrement(key: string) {
    return this.use(async () => this.shared.decrement(key), async () => this.local.decrement(key));
  }

  resetKey(key: string) {
    return this.use(async () => this.shared.resetKey(key), async () => this.local.resetKey(key));
  }

  private async use<T>(shared: () => Promise<T>, local: () => Promise<T>): Promise<T> {
    if (!this.connection.up) return local();
    try {
      await this.sharedInit();
      return await shared();
    } catch (error) {
      this.log.warn({ err: error }, "rate-limit store unreachable; counting in this process");
      // Loaded again next time: a Redis that restarted has lost the store's scripts, and
      // a reload that failed once would otherwise stay failed.
      this.sharedReady = null;
      return local();
    }
  }

  private sharedInit(): Promise<void> {
    this.sharedReady ??= Promise.resolve(this.shared.init?.(this.options!)).catch((error: unknown) => {
      this.sharedReady = null;
      throw error;
    });
    return this.sharedReady;
  }
}

/** Per-client limit of every request to the credential routes (login, register); 0 turns it off. */
export function createCredentialRateLimiter(perMinute: number, store: Store): RequestHandler {
  if (perMinute === 0) return (_req, _res, next) => next();
  return rateLimit({
    windowMs: WINDOW_MS,
    limit: perMinute,
    store,
    // Redis down: serve the request rather than refuse every login.
    passOnStoreError: true,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    handler: (req, _res, next) => next(tooMany((req as Request & { rateLimit?: RateLimitInfo }).rateLimit?.resetTime)),
  });
}
