import { createClient } from "redis";
import type { Config } from "../config";
import type { Logger } from "../logger";

export type RedisClient = ReturnType<typeof createClient>;

export interface RedisOptions {
  url: string;
  /** How long a command may take before it fails (REDIS_COMMAND_TIMEOUT_MS). */
  commandTimeoutMs: number;
}

/** Retries every second at most, forever: Redis coming back must be noticed soon. */
const reconnectIn = (retries: number) => Math.min(50 * 2 ** retries, 1000) + Math.floor(Math.random() * 100);

/**
 * A Redis connection that never makes its caller wait on an outage: while it is not
 * ready, commands fail at once (no offline queue to pile up in and hang on), and a
 * command Redis does not answer fails after the timeout. `isReady` is its health.
 * Logs going down and coming back once each, not every reconnection attempt.
 */
export function createRedisClient(options: RedisOptions, log: Logger, name: string): RedisClient {
  const client = createClient({
    url: options.url,
    disableOfflineQueue: true,
    commandOptions: { timeout: options.commandTimeoutMs },
    socket: { connectTimeout: 5000, reconnectStrategy: reconnectIn },
  });
  let down = false;
  client.on("error", (error: Error) => {
    if (down) return log.debug({ err: error, client: name }, "redis still unreachable");
    down = true;
    log.warn({ err: error, client: name }, "redis connection lost; going on without it");
  });
  client.on("ready", () => {
    if (down) log.info({ client: name }, "redis connection back");
    down = false;
  });
  return client;
}

/**
 * Connects, waiting at most `waitMs` for a first connection: a server starts without
 * Redis (degraded) rather than not at all, and the client keeps trying.
 */
export async function connectRedis(client: RedisClient, waitMs = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const connecting = client.connect().then(() => undefined);
  // The client retries on its own; a rejection here (closed before it connected) is logged by its "error" listener.
  connecting.catch(() => undefined);
  await Promise.race([connecting, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
}

/**
 * Closes, never waiting on an outage: while Redis answers, a PING first (its answer means
 * every command sent before it was processed), bounded by the command timeout.
 */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (!client.isOpen) return;
  if (client.isReady) await client.ping().catch(() => undefined);
  if (client.isOpen) client.destroy();
}

/** The Redis settings of the configuration; null without REDIS_URL (one process, no Redis). */
export function redisOptions(config: Pick<Config, "redisUrl" | "redisCommandTimeoutMs">): RedisOptions | null {
  return config.redisUrl ? { url: config.redisUrl, commandTimeoutMs: config.redisCommandTimeoutMs } : null;
}
