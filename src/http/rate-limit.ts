import type { Request, RequestHandler } from "express";
import { MemoryStore, rateLimit, type RateLimitInfo, type Store } from "express-rate-limit";
import { RedisStore } from "rate-limit-redis";
import { createClient } from "redis";
import type { Logger } from "../logger";
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
 * the limit.
 */
export interface RateLimitStores {
  /** A store of its own for one limiter. */
  create(name: string): Store;
  close(): Promise<void>;
}

export async function createRateLimitStores(redisUrl: string | null, prefix: string, log: Logger): Promise<RateLimitStores> {
  if (!redisUrl) return { create: () => new MemoryStore(), close: async () => undefined };
  const client = createClient({ url: redisUrl, socket: { connectTimeout: 5000 } });
  client.on("error", (error: Error) => log.warn({ err: error }, "redis rate-limit connection error"));
  await client.connect();
  return {
    create: (name) => new RedisStore({ sendCommand: (...args: string[]) => client.sendCommand(args), prefix: `${prefix}rate-limit:${name}:` }),
    close: async () => {
      await client.quit().catch(() => undefined);
    },
  };
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
