import type { Request, RequestHandler } from "express";
import { MemoryStore, ipKeyGenerator, rateLimit, type ClientRateLimitInfo, type Options, type RateLimitInfo, type Store } from "express-rate-limit";
import { RedisStore } from "rate-limit-redis";
import { createClient } from "redis";
import type { Logger } from "../logger";
import { DomainError } from "../core/errors";

const WINDOW_MS = 60_000;

function tooMany(resetTime: Date | undefined): DomainError {
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

/**
 * Per-client limit of wrong passwords presented anywhere but login: HTTP Basic on every
 * route and `current_password`. Each such attempt counts as it starts (so a burst of
 * parallel guesses is limited like a sequence) and is forgiven when the password was
 * right; over the limit, the password is not even checked, so a right guess cannot be
 * told from a wrong one. Requests that present no password (bearer tokens, event
 * streams) never count.
 */
export interface FailedCredentialLimiter {
  /** Counts an attempt, or throws 429 when the client is over its limit. */
  attempt(req: Pick<Request, "ip">): Promise<{ forgive(): Promise<void> }>;
  /** Throws 429 when the client is over its limit, counting nothing (credentials verified lately). */
  check(req: Pick<Request, "ip">): Promise<void>;
}

const NOTHING_TO_FORGIVE = { forgive: async () => undefined };

/** Limits nothing (RATE_LIMIT_AUTH_PER_MINUTE=0). */
export const NO_FAILED_CREDENTIAL_LIMIT: FailedCredentialLimiter = { attempt: async () => NOTHING_TO_FORGIVE, check: async () => undefined };

export async function createFailedCredentialLimiter(perMinute: number, store: Store, log: Logger): Promise<FailedCredentialLimiter> {
  if (perMinute === 0) return NO_FAILED_CREDENTIAL_LIMIT;
  await store.init?.({ windowMs: WINDOW_MS } as Options);
  // Like the login limiter: when the store fails, serve rather than refuse everyone.
  const tolerate = (error: unknown) => log.warn({ err: error }, "failed-credential limiter store failed");
  const keyOf = (req: Pick<Request, "ip">) => ipKeyGenerator(req.ip ?? "unknown");
  return {
    async check(req) {
      let info: ClientRateLimitInfo | undefined;
      try {
        info = await store.get?.(keyOf(req));
      } catch (error) {
        tolerate(error);
      }
      if (info && info.totalHits >= perMinute) throw tooMany(info.resetTime);
    },
    async attempt(req) {
      const key = keyOf(req);
      let info: ClientRateLimitInfo;
      try {
        info = await store.increment(key);
      } catch (error) {
        tolerate(error);
        return NOTHING_TO_FORGIVE;
      }
      if (info.totalHits > perMinute) throw tooMany(info.resetTime);
      return {
        async forgive() {
          try {
            await store.decrement(key);
          } catch (error) {
            tolerate(error);
          }
        },
      };
    },
  };
}
