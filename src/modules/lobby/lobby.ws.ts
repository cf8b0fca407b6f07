import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { RawData, WebSocket } from "ws";
import { ProblemWebSocketServer } from "../../http/node-answers";
import type { Upgrade } from "../../core/module";
import type { Logger } from "../../logger";
import type { Connections } from "../../realtime/connections";
import type { MessageMetrics } from "../../realtime/metrics";
import type { StreamRelay } from "../../realtime/stream-relay";
import { encodeOnce, LOBBY_CLIENT_MESSAGES, LOBBY_SERVER_MESSAGES, parseMessage } from "./lobby.protocol";
import type { LobbyService } from "./lobby.service";
import { LobbySession } from "./lobby.session";

export const LOBBY_PATH = "/lobby_api";
/** Larger frames are answered `invalid_message` unread. */
const MAX_MESSAGE_BYTES = 64 * 1024;
/** Larger frames close the connection (1009), by `ws` itself. */
const MAX_PAYLOAD_BYTES = 1024 * 1024;
const INVALID_LIMIT = 50;
const INVALID_WINDOW_MS = 10_000;
/** A client that lets this much pile up unsent is cut off. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

const utf8 = new TextDecoder("utf-8", { fatal: true });

function frameText(data: RawData): string | null {
  const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
  if (buffer.length > MAX_MESSAGE_BYTES) return null;
  try {
    return utf8.decode(buffer);
  } catch {
    return null;
  }
}

/** The client's address as Express' `req.ip` reads it with the same `trust proxy` (boolean or hop count). */
function clientAddress(req: IncomingMessage, trustProxy: boolean | number): string {
  const remote = req.socket.remoteAddress ?? "unknown";
  if (trustProxy === false || trustProxy === 0) return remote;
  const header = req.headers["x-forwarded-for"];
  const forwarded = (Array.isArray(header) ? header.join(",") : (header ?? "")).split(",").map((a) => a.trim()).filter(Boolean);
  // Nearest first: the socket's peer, then the proxies' entries from the right.
  const chain = [remote, ...forwarded.reverse()];
  return chain[Math.min(trustProxy === true ? chain.length - 1 : trustProxy, chain.length - 1)];
}

/** The lobby's own WebSocket door: `/lobby_api`, one JSON message per frame. */
export class LobbyWebSocketDoor {
  private readonly wss = new ProblemWebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD_BYTES });
  private readonly alive = new WeakSet<WebSocket>();
  /**
   * A relayed event is one object for every subscriber on this process: serialised and
   * UTF-8 encoded once, and the same bytes written to every socket (a string would be
   * measured and encoded again for each).
   */
  private readonly frameOf = encodeOnce((message) => Buffer.from(JSON.stringify(message)));
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(
    private readonly lobby: LobbyService,
    private readonly relay: StreamRelay,
    private readonly connections: Connections,
    private readonly log: Logger,
    private readonly trustProxy: boolean | number,
    /** LOBBY_PING_SECONDS: a client that has not answered the previous ping by the next one is dropped. */
    private readonly pingSeconds: number,
    private readonly metrics: MessageMetrics,
  ) {
    this.wss.on("connection", (ws: WebSocket, req: IncomingMessage) => this.connect(ws, clientAddress(req, this.trustProxy)));
  }

  readonly upgrade: Upgrade = {
    path: LOBBY_PATH,
    handle: (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit("connection", ws, req));
    },
    protocol: {
      summary: "The game lobby: one JSON object per frame (text, or binary holding UTF-8 JSON), each named by its `$type`; the server answers in text frames",
      receives: LOBBY_CLIENT_MESSAGES,
      sends: LOBBY_SERVER_MESSAGES,
    },
  };

  start(): void {
    this.heartbeat = setInterval(() => {
      for (const ws of this.wss.clients) {
        if (!this.alive.has(ws)) {
          ws.terminate();
          continue;
        }
        this.alive.delete(ws);
        ws.ping();
      }
    }, this.pingSeconds * 1000);
    this.heartbeat.unref();
  }

  stop(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const ws of this.wss.clients) ws.close(1001, "server shutting down");
    this.wss.close();
  }

  private connect(ws: WebSocket, address: string): void {
    this.alive.add(ws);
    ws.on("pong", () => this.alive.add(ws));
    const session = new LobbySession(this.lobby, this.relay, this.connections, {
      send: (message) => {
        if (ws.readyState !== ws.OPEN) return;
        if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
          this.metrics.cutOff("lobby");
          ws.terminate();
          return;
        }
        ws.send(this.frameOf(message), { binary: false });
      },
      end: () => ws.close(1008, "credentials ended"),
      address,
      log: this.log,
    });
    const invalid: number[] = [];
    ws.on("message", (data) => {
      const text = frameText(data);
      const message = text === null ? null : parseMessage(text);
      if (message) return session.handle(message);
      const now = Date.now();
      invalid.push(now);
      while (invalid.length > 0 && invalid[0] <= now - INVALID_WINDOW_MS) invalid.shift();
      if (invalid.length > INVALID_LIMIT) {
        ws.close(1008, "too many invalid messages");
        return;
      }
      session.reject();
    });
    ws.on("close", () => session.close());
    ws.on("error", (error) => this.log.debug({ err: error }, "lobby websocket error"));
  }
}
