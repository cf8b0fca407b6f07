import { createClient, TimeoutError } from "redis";
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
/** How often a connected client makes sure Redis still answers. */
const PROBE_MS = 1000;

/**
 * A Redis connection that never makes its caller wait on an outage: while it is not
 * ready, commands fail at once (no offline queue to pile up in and hang on), and a
 * command run through `command` that Redis does not answer fails after the command
 * timeout (node-redis' own timeout ends once a command is sent). `up` is its health:
 * false while disconnected, and while a connected Redis does not answer (a PING every
 * second, or a command that timed out, says so: a stopped or overloaded Redis keeps its
 * connections open). Logs going down and coming back once each.
 */
export class RedisConnection {
  readonly client: RedisClient;
  private stalled = false;
  /** Down since it was last up (or since it started without Redis): coming back tells the `onUp` listeners. */
  private lost = false;
  private probing = false;
  private readonly upListeners: Array<() => void> = [];
  private readonly probe: NodeJS.Timeout;
  private readonly timeoutMs: number;

  constructor(
    options: RedisOptions,
    private readonly log: Logger,
    private readonly name: string,
  ) {
    this.client = createClient({
      url: options.url,
      disableOfflineQueue: true,
      commandOptions: { timeout: options.commandTimeoutMs },
      socket: { connectTimeout: 5000, reconnectStrategy: reconnectIn },
    });
    this.timeoutMs = options.commandTimeoutMs;
    this.client.on("error", (error: Error) => this.down(error));
    this.client.on("ready", () => this.back());
    this.probe = setInterval(() => void this.check(), PROBE_MS);
    this.probe.unref();
  }

  get up(): boolean {
    return this.client.isReady && !this.stalled;
  }

  /** Runs each time the connection is up again after being down. */
  onUp(listener: () => void): void {
    this.upListeners.push(listener);
  }

  /**
   * Runs a command, failing it after the command timeout even once it is sent; one that
   * times out makes the connection count as down until Redis answers again.
   */
  async command<T>(run: (client: RedisClient) => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([run(this.client), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new TimeoutError()), this.timeoutMs)))]);
    } catch (error) {
      if (error instanceof TimeoutError && this.client.isReady && !this.stalled) {
        this.stalled = true;
        this.down(error);
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Subscribes (`make` runs SUBSCRIBE or PSUBSCRIBE), never rejecting: a subscription that
   * fails (Redis went away first) is made again once Redis is back; those that succeeded
   * node-redis makes again itself on every reconnection. Waits for Redis' answer only while
   * it is up.
   */
  subscribe(make: (client: RedisClient) => Promise<unknown>): Promise<void> {
    const attempt = (): Promise<void> =>
      make(this.client).then(
        () => undefined,
        () => void this.client.once("ready", () => void attempt()),
      );
    const subscribed = attempt();
    if (!this.up) return Promise.resolve();
    // A Redis that stops answering (not closing) must not hold the caller (a server starting).
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.timeoutMs)));
    return Promise.race([subscribed, waited]).finally(() => clearTimeout(timer));
  }

  /**
   * Connects, waiting at most `waitMs` for a first connection: a server starts without
   * Redis (degraded) rather than not at all, and the client keeps trying.
   */
  async connect(waitMs = 1000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const connecting = this.client.connect().then(() => undefined);
    // The client retries on its own; a rejection here (closed before it connected) was logged as an "error".
    connecting.catch(() => undefined);
    await Promise.race([connecting, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }

  /** Closes, never waiting on an outage: while Redis answers, a PING first (its answer means every command sent before it was processed). */
  async close(): Promise<void> {
    clearInterval(this.probe);
    this.upListeners.length = 0;
    if (!this.client.isOpen) return;
    if (this.up) await this.command((client) => client.ping()).catch(() => undefined);
    if (this.client.isOpen) this.client.destroy();
  }

  private down(error: unknown): void {
    if (this.lost) return this.log.debug({ err: error, client: this.name }, "redis still unreachable");
    this.lost = true;
    this.log.warn({ err: error, client: this.name }, "redis unreachable; going on without it");
  }

  private back(): void {
    this.stalled = false;
    if (!this.lost) return;
    this.lost = false;
    this.log.info({ client: this.name }, "redis reachable again");
    for (const listener of this.upListeners) listener();
  }

  private async check(): Promise<void> {
    if (!this.client.isReady || this.probing) return;
    this.probing = true;
    try {
      await this.command((client) => client.ping());
      if (this.stalled) this.back();
    } catch {
      // Down already (command says so).
    } finally {
      this.probing = false;
    }
  }
}

/** The Redis settings of the configuration; null without REDIS_URL (one process, no Redis). */
export function redisOptions(config: Pick<Config, "redisUrl" | "redisCommandTimeoutMs">): RedisOptions | null {
  return config.redisUrl ? { url: config.redisUrl, commandTimeoutMs: config.redisCommandTimeoutMs } : null;
}
