import type { Request, Response } from "express";
import type { AuthContext } from "../http/auth-context";
import { HttpError } from "../http/errors";
import { endsConnection, type AccountsEvent } from "../modules/accounts/sessions.service";
import { MessageIdSchema } from "../modules/messaging/messaging.schemas";
import { belowThreshold } from "./backpressure";

export interface EventStream {
  /** Sends one event; `data` is already JSON. Drops a client that stopped reading. */
  send(id: string, event: string, data: string): void;
  /** For replays: a promise while the client has much unsent (see StreamRelay's `ready`). */
  ready(): Promise<void> | undefined;
  onClose(callback: () => void): void;
}

interface OpenStream {
  auth: AuthContext;
  close(): void;
}

/**
 * Server-Sent Events responses: headers, heartbeats, a bound on what a slow client may
 * leave buffered, and the list of open streams so shutdown can end them.
 */
export class EventStreams {
  private readonly open = new Set<OpenStream>();

  constructor(
    private readonly options: {
      heartbeatSeconds: number;
      bufferLimitBytes: number;
      /** Whether the credentials were revoked after they were checked. */
      revokedSince: (auth: AuthContext, since: number) => boolean;
    },
  ) {}

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

  /** Starts the stream for a caller; it ends when their session ends or their token expires. */
  start(req: Request, res: Response, auth: AuthContext): EventStream {
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
    // Marks the stream closed at once, so nothing writes to it after it ends.
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      clearTimeout(expiry);
      this.open.delete(entry);
      for (const callback of callbacks) callback();
    };
    const end = () => {
      close();
      res.end();
    };
    const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), this.options.heartbeatSeconds * 1000);
    const expiry = auth.expiresAt ? setTimeout(end, Math.min(auth.expiresAt - Date.now(), 2 ** 31 - 1)) : undefined;
    const entry: OpenStream = { auth, close: end };
    this.open.add(entry);
    res.on("close", close);
    // A logout that happened since the credentials were checked has been missed by endFor.
    if (this.options.revokedSince(auth, auth.checkedAt)) end();

    const limit = this.options.bufferLimitBytes;
    const cutOff = () => {
      // The client stopped reading: cut it off rather than buffer without bound.
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
      },
      onClose(callback) {
        if (closed) callback();
        else callbacks.push(callback);
      },
    };
  }

  /** Ends the streams of sessions that the event ends. */
  endFor(event: AccountsEvent): void {
    for (const stream of this.open)
      if (endsConnection(event, stream.auth.user.id, stream.auth.sessionId)) stream.close();
  }

  get size(): number {
    return this.open.size;
  }

  closeAll(): void {
    for (const stream of this.open) stream.close();
  }
}
