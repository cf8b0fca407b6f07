import type { Request, Response } from "express";
import { DomainError } from "../core/errors";
import type { Principal } from "../core/principal";
import { StreamIdSchema } from "../http/schemas";
import { belowThreshold } from "./backpressure";
import type { Connections } from "./connections";
import type { MessageMetrics } from "./metrics";

export interface EventStream {
  /** Sends one event; `data` is already JSON. Drops a client that stopped reading. */
  send(id: string, event: string, data: string): void;
  /** For replays: a promise while the client has much unsent (see StreamRelay's `ready`). */
  ready(): Promise<void> | undefined;
  onClose(callback: () => void): void;
}

/**
 * Server-Sent Events responses: headers, heartbeats, a bound on what a slow client may
 * leave buffered, and the list of open streams so shutdown can end them.
 */
export class EventStreams {
  private readonly open = new Set<(retryMs?: number) => void>();

  constructor(
    private readonly options: {
      heartbeatSeconds: number;
      bufferLimitBytes: number;
      connections: Connections;
      metrics: MessageMetrics;
    },
  ) {}

  /** The id to replay after: `Last-Event-ID` (what EventSource sends on reconnect) or `?after=`. */
  static resumeFrom(req: Request, after: string | undefined): string | undefined {
    const header = req.headers["last-event-id"];
    if (typeof header === "string" && header !== "") {
      const parsed = StreamIdSchema.safeParse(header.trim());
      if (!parsed.success)
        throw new DomainError(400, "Last-Event-ID must be an event id this stream sent.", { errors: [{ field: "header.last-event-id", message: "not an event id" }] });
      return parsed.data;
    }
    return after;
  }

  /** Starts the stream for a caller; it ends when their session ends or their token expires. */
  start(req: Request, res: Response, principal: Principal): EventStream {
    res.status(200);
    res.setHeader("Content-Type", "text/event-stream; charset=utf-8");
    res.setHeader("Cache-Control", "no-cache, no-transform");
    // Unless the server is draining, which asks for `Connection: close`.
    if (!res.hasHeader("Connection")) res.setHeader("Connection", "keep-alive");
    res.setHeader("X-Accel-Buffering", "no");
    res.flushHeaders();
    res.write("retry: 3000\n\n");
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);

    const callbacks: Array<() => void> = [];
    let closed = false;
    let unregister = () => {};
    // Marks the stream closed at once, so nothing writes to it after it ends.
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      clearTimeout(expiry);
      this.open.delete(end);
      unregister();
      for (const callback of callbacks) callback();
    };
    const end = (retryMs?: number) => {
      if (!closed && retryMs !== undefined) res.write(`retry: ${retryMs}\n\n`);
      close();
      res.end();
    };
    const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), this.options.heartbeatSeconds * 1000);
    const expiry = principal.expiresAt ? setTimeout(() => end(), Math.min(principal.expiresAt - Date.now(), 2 ** 31 - 1)) : undefined;
    this.open.add(end);
    res.on("close", close);
    // Ends at once when the credentials ended since they were checked.
    unregister = this.options.connections.add({ principal, end: () => end() });

    const { bufferLimitBytes: limit, metrics } = this.options;
    const cutOff = () => {
      // The client stopped reading: cut it off rather than buffer without bound.
      if (!closed) metrics.cutOff("sse");
      close();
      res.destroy();
    };
    return {
      ready() {
        return belowThreshold(() => res.writableLength, limit / 2, () => closed, cutOff);
      },
      send(id, event, data) {
        if (closed) return;
        if (res.writableLength > limit) return cutOff();
        res.write(`id: ${id}\nevent: ${event}\ndata: ${data}\n\n`);
        metrics.delivered("sse");
      },
      onClose(callback) {
        if (closed) callback();
        else callbacks.push(callback);
      },
    };
  }

  get size(): number {
    return this.open.size;
  }

  /** Ends every stream; with `retryMs`, first tells each EventSource when to reconnect (the SSE `retry:` field). */
  closeAll(retryMs?: number): void {
    for (const end of [...this.open]) end(retryMs);
  }
}
