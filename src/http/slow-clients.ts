import type http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { Counter, type Registry } from "prom-client";
import type { Logger } from "../logger";
import { rawProblemResponse, sendProblem } from "./error-handler";

export interface SlowClientLimits {
  /** Headers and body together (Node's headersTimeout cuts a request whose headers are late). */
  requestTimeoutMs: number;
  /** Multipart uploads: the longest gap between two bytes, instead of a total. */
  uploadIdleMs: number;
  /** Incomplete connections per client address; 0: no limit. */
  maxIncompletePerAddress: number;
}

export type SlowClientReason = "too_many_incomplete" | "headers_timeout" | "request_timeout" | "upload_idle";

/** A connection whose request (or WebSocket handshake) has not fully arrived. */
interface Incomplete {
  address: string;
  /** Once its headers are read and a body is on its way. */
  body?: { req: IncomingMessage; res: ServerResponse; since: number; upload: boolean; bytesRead: number; progressAt: number };
}

const LOG_EVERY_MS = 10_000;

/** Requests that carry a body still to be read. */
const hasBody = (req: IncomingMessage) =>
  req.headers["transfer-encoding"] !== undefined || (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");

/**
 * Slow or stalled clients cannot hold the server: a time limit on receiving each
 * request (an idle limit for multipart uploads, which legitimately take long), and a cap
 * per client address on connections still incomplete. Only receiving is timed: an
 * event stream or a long download, once its request has arrived, is not cut.
 * Refusals and cuts are counted (`convene_slow_clients_total`) and logged at most once
 * per ten seconds.
 */
export class SlowClientGuard {
  private readonly incomplete = new Map<Socket, Incomplete>();
  private readonly seen = new WeakSet<Socket>();
  private readonly perAddress = new Map<string, number>();
  private readonly fedBytes = new WeakMap<Socket, number>();
  private readonly counter: Counter<"reason">;
  private readonly unlogged = new Map<SlowClientReason, number>();
  private loggedAt = 0;
  private logTimer: NodeJS.Timeout | undefined;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly limits: SlowClientLimits,
    private readonly log: Logger,
    metrics: Registry,
  ) {
    this.counter = new Counter({ name: "convene_slow_clients_total", help: "Connections refused or cut because their request arrived too slowly, by reason", labelNames: ["reason"], registers: [metrics] });
    this.sweeper = setInterval(() => this.sweep(), SlowClientGuard.checkEveryMs(limits));
    this.sweeper.unref();
  }

  /** How often limits are checked (Node's own header check included: `connectionsCheckingInterval`). */
  static checkEveryMs(limits: Pick<SlowClientLimits, "requestTimeoutMs" | "uploadIdleMs">): number {
    return Math.max(100, Math.min(1000, limits.requestTimeoutMs / 4, limits.uploadIdleMs / 4));
  }

  /** Call after Socket.IO is attached: engine.io hides the requests it serves from listeners added before it. */
  attach(server: http.Server): void {
    // Before Node's own listener, so a refused connection is never parsed.
    server.prependListener("connection", (socket: Socket) => this.accept(socket));
    server.on("request", (req: IncomingMessage, res: ServerResponse) => this.received(req, res));
    server.on("upgrade", (req: IncomingMessage) => {
      // A fresh Socket.IO WebSocket is incomplete until its handshake is accepted (`handshakeDone`);
      // an engine.io upgrade of a session (`sid=`) already had its handshake.
      const url = req.url ?? "";
      if (!url.startsWith("/socket.io/") || /[?&]sid=/.test(url)) this.complete(req.socket as Socket);
    });
    server.on("clientError", (error: NodeJS.ErrnoException) => {
      if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") this.report("headers_timeout");
    });
  }

  /** A Socket.IO handshake accepted on this TCP connection. */
  handshakeDone(socket: Socket | undefined): void {
    if (socket) this.complete(socket);
  }

  close(): void {
    clearInterval(this.sweeper);
    clearTimeout(this.logTimer);
  }

  private accept(socket: Socket): void {
    // A connection handed back to the server (an h2c request served as HTTP/1.1) is one already counted.
    if (this.seen.has(socket)) return;
    this.seen.add(socket);
    const address = socket.remoteAddress ?? "unknown";
    const open = this.perAddress.get(address) ?? 0;
    const cap = this.limits.maxIncompletePerAddress;
    if (cap > 0 && open >= cap) {
      this.report("too_many_incomplete");
      socket.end(rawProblemResponse(429, "Too many connections from your address have a request still arriving."), () => socket.destroy());
      return;
    }
    this.perAddress.set(address, open + 1);
    this.incomplete.set(socket, { address });
    socket.once("close", () => this.complete(socket));
    // A cluster worker gets a connection whose request has a body as a stream fed by the primary, without bytesRead.
    if (typeof socket.bytesRead !== "number") {
      this.fedBytes.set(socket, 0);
      socket.on("data", (chunk: Buffer) => this.fedBytes.set(socket, (this.fedBytes.get(socket) ?? 0) + chunk.length));
    }
  }

  private received(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as Socket;
    if (!hasBody(req) || req.complete) return this.complete(socket);
    let entry = this.incomplete.get(socket);
    if (!entry) {
      // A later request on a kept-alive connection: incomplete again while its body arrives.
      const address = socket.remoteAddress ?? "unknown";
      this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
      entry = { address };
      this.incomplete.set(socket, entry);
    }
    const now = Date.now();
    const upload = /^multipart\/form-data/i.test(req.headers["content-type"] ?? "");
    entry.body = { req, res, since: now, upload, bytesRead: this.bytesRead(socket), progressAt: now };
    req.once("end", () => this.complete(socket));
  }

  private bytesRead(socket: Socket): number {
    return typeof socket.bytesRead === "number" ? socket.bytesRead : (this.fedBytes.get(socket) ?? 0);
  }

  private complete(socket: Socket): void {
    const entry = this.incomplete.get(socket);
    if (!entry) return;
    this.incomplete.delete(socket);
    const left = (this.perAddress.get(entry.address) ?? 1) - 1;
    if (left > 0) this.perAddress.set(entry.address, left);
    else this.perAddress.delete(entry.address);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [socket, { body }] of this.incomplete) {
      if (!body) continue;
      if (body.req.complete) {
        this.complete(socket);
        continue;
      }
      const bytesRead = this.bytesRead(socket);
      if (bytesRead > body.bytesRead) {
        body.bytesRead = bytesRead;
        body.progressAt = now;
      }
      if (body.upload ? now - body.progressAt > this.limits.uploadIdleMs : now - body.since > this.limits.requestTimeoutMs)
        this.cut(socket, body.res, body.upload ? "upload_idle" : "request_timeout");
    }
  }

  /** A 408 where no answer has begun, then the connection closes. */
  private cut(socket: Socket, res: ServerResponse, reason: SlowClientReason): void {
    this.complete(socket);
    this.report(reason);
    if (res.headersSent || res.writableEnded || socket.destroyed) {
      socket.destroy();
      return;
    }
    const detail = reason === "upload_idle" ? "The upload stopped sending data." : "The request took too long to arrive.";
    sendProblem(res, 408, detail, { Connection: "close" }, () => socket.destroy());
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  private report(reason: SlowClientReason): void {
    this.counter.inc({ reason });
    this.unlogged.set(reason, (this.unlogged.get(reason) ?? 0) + 1);
    if (this.logTimer) return;
    const wait = Math.max(0, this.loggedAt + LOG_EVERY_MS - Date.now());
    this.logTimer = setTimeout(() => this.flushLog(), wait);
    this.logTimer.unref();
  }

  private flushLog(): void {
    this.logTimer = undefined;
    this.loggedAt = Date.now();
    const counts = Object.fromEntries(this.unlogged);
    this.unlogged.clear();
    this.log.warn({ slowClients: counts, limits: this.limits }, "refused or cut connections whose requests arrived too slowly");
  }
}
