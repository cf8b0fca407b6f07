import { MemoryStore, type ClientRateLimitInfo, type Options, type Store } from "express-rate-limit";
import { DomainError } from "../core/errors";
import type { Logger } from "../logger";

const WINDOW_MS = 60_000;
/** How long a count may take in the shared store before this process counts alone. */
const STORE_TIMEOUT_MS = 250;

/** Counts what a principal does per minute; 429 (with Retry-After) over the limit. */
export interface PrincipalLimiter {
  consume(principalKey: string): Promise<void>;
}

export const NO_PRINCIPAL_LIMIT: PrincipalLimiter = { consume: async () => undefined };

/**
 * A per-principal limit (messages posted). Counted in the shared store (Redis with
 * REDIS_URL), so every process counts together; when that store fails or is slow, this
 * process counts alone rather than wait on it.
 */
export async function createPrincipalLimiter(perMinute: number, shared: Store, log: Logger, what: string): Promise<PrincipalLimiter> {
  if (perMinute === 0) return NO_PRINCIPAL_LIMIT;
  const local = new MemoryStore();
  local.init({ windowMs: WINDOW_MS } as Options);
  await shared.init?.({ windowMs: WINDOW_MS } as Options);
  const count = async (key: string): Promise<ClientRateLimitInfo> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        shared.increment(key),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("rate-limit store timed out")), STORE_TIMEOUT_MS))),
      ]);
    } catch (error) {
      log.warn({ err: error }, "principal limiter store failed; counting in this process");
      return local.increment(key);
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    async consume(key) {
      const info = await count(key);
      if (info.totalHits <= perMinute) return;
      const retryAfter = Math.max(1, Math.ceil(((info.resetTime?.getTime() ?? Date.now() + WINDOW_MS) - Date.now()) / 1000));
      throw new DomainError(429, `Too many ${what}: at most ${perMinute} a minute; try again in ${retryAfter} seconds.`, {
        headers: { "Retry-After": String(retryAfter) },
      });
    },
  };
}
