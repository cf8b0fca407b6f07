import { z } from "zod";
import type { SocketFace } from "../core/module";
import { defineSocketEvents, type ServerEventsOf } from "./events";
import type { AppServer } from "./socket-server";
import type { EventStreams } from "./sse";

/** What clients are told to wait before reconnecting (to another process, once the load balancer noticed). */
export const RECONNECT_AFTER_MS = 2000;

const ShutdownSchema = z.object({
  reason: z.literal("shutdown"),
  reconnect_after_ms: z.number().int().describe("Wait this long, then reconnect: the connection is about to close and another server will answer"),
});

export const shutdownEvents = defineSocketEvents({
  emits: {
    "server:shutdown": { summary: "The server is shutting down: this connection closes next; reconnect after `reconnect_after_ms`", payload: ShutdownSchema },
  },
});

declare module "./events" {
  interface ServerToClientEvents extends ServerEventsOf<typeof shutdownEvents> {}
}

/** The kernel's own Socket.IO face: only what it emits (for AsyncAPI and the typed events). */
export const shutdownFace: SocketFace = { events: shutdownEvents };

/**
 * Tells this process' real-time clients that it is going: each Socket.IO client gets
 * `server:shutdown` (only this process' sockets: with the Redis adapter, a plain emit
 * would reach every process), each event stream a `retry:` hint before it ends. The
 * connections close next (`io.close()`), which a Socket.IO client takes as a transport
 * close and reconnects after.
 */
export function announceShutdown(io: AppServer, eventStreams: EventStreams): void {
  io.local.emit("server:shutdown", { reason: "shutdown", reconnect_after_ms: RECONNECT_AFTER_MS });
  eventStreams.closeAll(RECONNECT_AFTER_MS);
}
