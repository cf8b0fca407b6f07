import type { Request, RequestHandler } from "express";
import { MemoryStore, ipKeyGenerator, rateLimit, type Options, type RateLimitInfo } from "express-rate-limit";
import { HttpError } from "./errors";

const WINDOW_MS = 60_000;

function tooMany(resetTime: Date | undefined): HttpError {
  const retryAfter = Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now() + WINDOW_MS) - Date.now()) / 1000));
  return new HttpError(429, `Too many attempts; try again in ${retryAfter} seconds.`, {
    headers: { "Retry-After": String(retryAfter) },
  });
}

/** Per-client limit of every request to the credential routes (login, register); 0 turns it off. */
export function createCredentialRateLimiter(perMinute: number): RequestHandler {
  if (perMinute === 0) return (_req, _res, next) => next();
  return rateLimit({
    windowMs: WINDOW_MS,
    limit: perMinute,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    handler: (req, _res, next) => next(tooMany((req as Request & { rateLimit?: RateLimitInfo }).rateLimit?.resetTime)),
  });
}

/**
 * Per-client limit of wrong passwords presented anywhere else: HTTP Basic on every route
 * and `current_password`. Only failures count, so a client that uses the API correctly
 * (long-lived event streams included) is never limited; once over the limit, every
 * credential check is refused before it runs, so a right guess cannot be told from a
 * wrong one. Counts are per process.
 */
export interface FailedCredentialLimiter {
  /** Throws 429 while the client is over its limit. */
  check(req: Request): Promise<void>;
  recordFailure(req: Request): Promise<void>;
}

/** Limits nothing (RATE_LIMIT_AUTH_PER_MINUTE=0). */
export const NO_FAILED_CREDENTIAL_LIMIT: FailedCredentialLimiter = { check: async () => undefined, recordFailure: async () => undefined };

export function createFailedCredentialLimiter(perMinute: number): FailedCredentialLimiter {
  if (perMinute === 0) return NO_FAILED_CREDENTIAL_LIMIT;
  const store = new MemoryStore();
  store.init({ windowMs: WINDOW_MS } as Options);
  const key = (req: Request) => ipKeyGenerator(req.ip ?? "unknown");
  return {
    async check(req) {
      const info = await store.get(key(req));
      if (info && info.totalHits >= perMinute && (info.resetTime?.getTime() ?? Infinity) > Date.now()) throw tooMany(info.resetTime);
    },
    async recordFailure(req) {
      await store.increment(key(req));
    },
  };
}
