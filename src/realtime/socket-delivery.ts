import { createAdapter } from "@socket.io/redis-adapter";
import type { RedisArgument } from "redis";
import type { Server } from "socket.io";
import type { ClientToServerEvents, ServerToClientEvents } from "./events";
import { z } from "zod";
import { tooLarge } from "../core/errors";
import type { Logger } from "../logger";
import { RedisConnection, type RedisClient, type RedisOptions } from "./redis-client";

/** The largest signaling payload relayed (`data` of room:signal and pair:signal, as JSON). */
export const MAX_SIGNAL_BYTES = 64 * 1024;

/** The ack result of a relayed signal (besides `ok: true`). */
export const DeliveredResult = z.object({ delivered: z.number().int().min(0).describe("How many sockets got it (0 when the target is offline)") });

/** 413 for signaling data over MAX_SIGNAL_BYTES as UTF-8 JSON. */
export function checkSignalSize(data: object): void {
  if (Buffer.byteLength(JSON.stringify(data)) > MAX_SIGNAL_BYTES) throw tooLarge("data is over 64 KiB as JSON.");
}

/** How long the adapter waits for the other processes' answers (fetchSockets) before it gives up. */
const REQUESTS_TIMEOUT_MS = 3000;

/** What the cross-process adapter says of its Redis connections. */
export interface SocketAdapter {
  /** Whether the other processes can be reached now. */
  reachable(): boolean;
  close(): Promise<void>;
}

/**
 * Throwaway events to the sockets in a Socket.IO room, on every process (signaling,
 * incoming-call notices): nothing stored, nothing repaired. Resolves with how many
 * sockets it reached. While the other processes cannot be reached (Redis down or not
 * answering), it reaches this process' sockets only, rather than wait.
 */
export class SocketDelivery {
  private io: Server<ClientToServerEvents, ServerToClientEvents> | null = null;
  private adapter: SocketAdapter | null = null;

  constructor(private readonly log?: Logger) {}

  bind(io: Server<ClientToServerEvents, ServerToClientEvents>, adapter: SocketAdapter | null = null): void {
    this.io = io;
    this.adapter = adapter;
  }

  async emit<E extends keyof ServerToClientEvents>(room: string, event: E, ...payload: Parameters<ServerToClientEvents[E]>): Promise<number> {
    if (!this.io) return 0;
    const sockets = await this.fetch(this.io, room);
    for (const socket of sockets) socket.emit(event, ...payload);
    return sockets.length;
  }

  /** Every process' sockets in the room; this one's when the others cannot be asked, or do not answer within REQUESTS_TIMEOUT_MS. */
  private async fetch(io: Server<ClientToServerEvents, ServerToClientEvents>, room: string) {
    if (this.adapter && !this.adapter.reachable()) return io.local.in(room).fetchSockets();
    try {
      return await io.in(room).fetchSockets();
    } catch (error) {
      this.log?.warn({ err: error, room }, "could not reach the other processes' sockets; delivering on this one");
      return io.local.in(room).fetchSockets();
    }
  }

  /**
   * This process' sockets in the Socket.IO rooms whose names start with `prefix`, by room,
   * each with its principal's id: what a module checks against the database when the bus
   * may have lost its leaves (a resync).
   */
  localMembers(prefix: string): Map<string, Array<{ principalId: string; leave(): void }>> {
    const members = new Map<string, Array<{ principalId: string; leave(): void }>>();
    if (!this.io) return members;
    const nsp = this.io.of("/");
    for (const [room, ids] of nsp.adapter.rooms) {
      if (!room.startsWith(prefix)) continue;
      for (const id of ids) {
        const socket = nsp.sockets.get(id);
        const principalId = (socket?.data as { principal?: { id: string } } | undefined)?.principal?.id;
        if (!socket || principalId === undefined) continue;
        if (!members.has(room)) members.set(room, []);
        members.get(room)!.push({ principalId, leave: () => void socket.leave(room) });
      }
    }
    return members;
  }

  /** Makes every socket in `room` (on every process) leave `fromRoom`. */
  leave(room: string, fromRoom: string): void {
    if (this.adapter && !this.adapter.reachable()) this.io?.local.in(room).socketsLeave(fromRoom);
    else this.io?.in(room).socketsLeave(fromRoom);
  }
}

/**
 * With REDIS_URL, Socket.IO's own Redis adapter carries `SocketDelivery`'s throwaway
 * events to sockets on other processes. Ordered streams do not use it: the relay
 * delivers those on each process, with repair. Its clients fail fast while Redis is
 * down, and nothing the adapter sends can reject unhandled (see `adapterClient`).
 */
export async function createSocketAdapter(io: Server, redis: RedisOptions, prefix: string, log: Logger): Promise<SocketAdapter> {
  const publisher = new RedisConnection(redis, log, "socket.io publisher");
  const subscriber = new RedisConnection(redis, log, "socket.io subscriber");
  await Promise.all([publisher.connect(), subscriber.connect()]);
  io.adapter(createAdapter(adapterClient(publisher, log), adapterClient(subscriber, log), { key: `${prefix}socket.io`, requestsTimeout: REQUESTS_TIMEOUT_MS }));
  return {
    reachable: () => publisher.up && subscriber.up,
    async close() {
      await Promise.allSettled([publisher.close(), subscriber.close()]);
    },
  };
}

/**
 * A client as the adapter sees it: a `publish` that never rejects (the adapter does not
 * await it), its one awaited command (PUBSUB NUMSUB, before fetchSockets) with the
 * timeout, and subscriptions that never reject and are made again once Redis is back
 * (the adapter subscribes in its constructor, without a catch, even while Redis is down).
 */
function adapterClient(connection: RedisConnection, log: Logger): RedisClient {
  type Args = Parameters<RedisClient["subscribe"]>;
  const overrides: Record<string, unknown> = {
    publish: (channel: string, message: string) =>
      connection.command((client) => client.publish(channel, message)).catch((error: unknown) => {
        log.warn({ err: error }, "socket.io adapter publish failed");
        return 0;
      }),
    sendCommand: (args: RedisArgument[]) => connection.command((client) => client.sendCommand(args)),
    subscribe: (...args: Args) => connection.subscribe((client) => client.subscribe(...args)),
    pSubscribe: (...args: Args) => connection.subscribe((client) => client.pSubscribe(...args)),
    unsubscribe: (...args: Args) => connection.client.unsubscribe(...args).catch(() => undefined),
    pUnsubscribe: (...args: Args) => connection.client.pUnsubscribe(...args).catch(() => undefined),
  };
  return new Proxy(connection.client, {
    get(target, property) {
      if (typeof property === "string" && property in overrides) return overrides[property];
      // Bound to the client itself: its private fields are not the proxy's.
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
