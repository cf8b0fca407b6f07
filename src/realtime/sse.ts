import type { Request, Response } from "express";
import { HttpError } from "../http/errors";
import { MessageIdSchema } from "../modules/messaging/messaging.schemas";

export interface EventStream {
  /** Sends one event; `data` is already JSON. Drops a client that stopped reading. */
  send(id: string, event: string, data: string): void;
  onClose(callback: () => void): void;
  readonly closed: boolean;
}

/**
 * Server-Sent Events responses: headers, heartbeats, a bound on what a slow client may
 * leave buffered, and the list of open streams so shutdown can end them.
 */
export class EventStreams {
  private readonly open = new Set<Response>();

  constructor(private readonly options: { heartbeatSeconds: number; bufferLimitBytes: number }) {}

  /** The id to replay after: `Last-Event-ID` (what EventSource sends on reconnect) or `?after=`. */
  static resumeFrom(req: Request, after: string | undefined): string | undefined {
    const header = req.headers["last-event-id"];
    if (typeof header === "string" && header !== "") {
      const parsed = MessageIdSchema.safeParse(header.trim());
      if (!parsed.success)
        throw new HttpError(400, "Last-Event-ID must be a message id.", { errors: [{ field: "header.last-event-id", message: "not a message id" }] });
      return parsed.data;
    }
    return after;
  }

  start(req: Request, res: Response): EventStream {
    res.status(200);
    res.setHeader("Content-Type", "text/event-stream; charset=utf-8");
    res.setHeader("Cache-Control", "no-cache, no-transform");
    res.setHeader("Connection", "keep-alive");
    res.setHeader("X-Accel-Buffering", "no");
    res.flushHeaders();
    res.write("retry: 3000\n\n");
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);

    const callbacks: Array<() => void> = [];
    let closed = false;
    const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), this.options.heartbeatSeconds * 1000);
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      this.open.delete(res);
      for (const callback of callbacks) callback();
    };
    this.open.add(res);
    res.on("close", close);

    const limit = this.options.bufferLimitBytes;
    return {
      send(id, event, data) {
        if (closed) return;
        if (res.writableLength > limit) {
          // The client stopped reading: cut it off rather than buffer without bound.
          res.destroy();
          close();
          return;
        }
        res.write(`id: ${id}\nevent: ${event}\ndata: ${data}\n\n`);
      },
      onClose(callback) {
        if (closed) callback();
        else callbacks.push(callback);
      },
      get closed() {
        return closed;
      },
    };
  }

  get size(): number {
    return this.open.size;
  }

  closeAll(): void {
    for (const res of this.open) res.end();
  }
}
