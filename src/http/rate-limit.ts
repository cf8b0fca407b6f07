import type { RequestHandler } from "express";
import { rateLimit, type RateLimitInfo } from "express-rate-limit";
import { HttpError } from "./errors";

/**
 * Per-client limit for the credential routes; 0 turns it off. Counts are per process.
 * With `failuresOnly`, only answers of 401 count: guessing passwords over HTTP Basic on
 * any route is then limited like the login route, and so is the bcrypt work it causes.
 */
export function createCredentialRateLimiter(perMinute: number, options: { failuresOnly?: boolean } = {}): RequestHandler {
  if (perMinute === 0) return (_req, _res, next) => next();
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    ...(options.failuresOnly ? { requestWasSuccessful: (_req, res) => res.statusCode !== 401, skipSuccessfulRequests: true } : {}),
    standardHeaders: "draft-7",
    legacyHeaders: false,
    handler: (req, _res, next) => {
      const info = (req as typeof req & { rateLimit?: RateLimitInfo }).rateLimit;
      const resetTime = info?.resetTime?.getTime() ?? Date.now() + 60_000;
      const retryAfter = Math.max(1, Math.ceil((resetTime - Date.now()) / 1000));
      next(
        new HttpError(429, `Too many attempts; try again in ${retryAfter} seconds.`, {
          headers: { "Retry-After": String(retryAfter) },
        }),
      );
    },
  });
}
