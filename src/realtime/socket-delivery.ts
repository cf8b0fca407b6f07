import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import type { Server } from "socket.io";
import type { ClientToServerEvents, ServerToClientEvents } from "./events";
import { z } from "zod";
import { tooLarge } from "../core/errors";
import type { Logger } from "../logger";

/** The largest signaling payload relayed (`data` of room:signal and pair:signal, as JSON). */
export const MAX_SIGNAL_BYTES = 64 * 1024;

/** The ack result of a relayed signal (besides `ok: true`). */
export const DeliveredResult = z.object({ delivered: z.number().int().min(0).describe("How many sockets got it (0 when the target is offline)") });

/** 413 for signaling data over MAX_SIGNAL_BYTES as UTF-8 JSON. */
export function checkSignalSize(data: object): void {
  if (Buffer.byteLength(JSON.stringify(data)) > MAX_SIGNAL_BYTES) throw tooLarge("data is over 64 KiB as JSON.");
}

/**
 * Throwaway events to the sockets in a Socket.IO room, on every process (signaling,
 * incoming-call notices): nothing stored, nothing repaired. Resolves with how many
 * sockets it reached.
 */
export class SocketDelivery {
  private io: Server<ClientToServerEvents, ServerToClientEvents> | null = null;

  bind(io: Server<ClientToServerEvents, ServerToClientEvents>): void {
    this.io = io;
  }

  async emit<E extends keyof ServerToClientEvents>(room: string, event: E, ...payload: Parameters<ServerToClientEvents[E]>): Promise<number> {
    if (!this.io) return 0;
    const sockets = await this.io.in(room).fetchSockets();
    for (const socket of sockets) socket.emit(event, ...payload);
    return sockets.length;
  }

  /** Makes every socket in `room` (on every process) leave `fromRoom`. */
  leave(room: string, fromRoom: string): void {
    this.io?.in(room).socketsLeave(fromRoom);
  }
}

/**
 * With REDIS_URL, Socket.IO's own Redis adapter carries `SocketDelivery`'s throwaway
 * events to sockets on other processes. Ordered streams do not use it: the relay
 * delivers those on each process, with repair.
 */
export async function createSocketAdapter(io: Server, url: string, prefix: string, log: Logger): Promise<{ close(): Promise<void> }> {
  const publisher = createClient({ url, socket: { connectTimeout: 5000 } });
  const subscriber = publisher.duplicate();
  for (const client of [publisher, subscriber]) client.on("error", (error: Error) => log.warn({ err: error }, "socket.io redis adapter connection error"));
  await Promise.all([publisher.connect(), subscriber.connect()]);
  io.adapter(createAdapter(publisher, subscriber, { key: `${prefix}socket.io`, requestsTimeout: 3000 }));
  return {
    async close() {
      await Promise.allSettled([publisher.quit(), subscriber.quit()]);
    },
  };
}
