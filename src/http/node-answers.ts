import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type ServerOptions, type WebSocket } from "ws";
import { problem } from "../core/errors";
import { PROBLEM_CONTENT_TYPE, rawProblemResponse, sendProblem } from "./error-handler";

/**
 * The options `answerAsProblems` needs the server created with: the Host check is made
 * there, where its answer can be a problem. (Not `shouldUpgradeCallback`, which Node
 * 22.21+ and 24.9+ have to serve h2c requests as plain ones: on 24.22 it drops the
 * requests pipelined behind one; answerAsProblems does it by hand, on every version.)
 */
export const NODE_SERVER_OPTIONS = { requireHostHeader: false } satisfies http.ServerOptions;

/**
 * The answers Node's HTTP server, engine.io and `ws` would write themselves (an empty 417
 * or 400, a text/html 400, a JSON `{code, message}`), written as problem+json instead,
 * on a server created with NODE_SERVER_OPTIONS. Call once every "request" and "upgrade"
 * listener is attached (Socket.IO's included): the checks go in front of them.
 */
export function answerAsProblems(server: http.Server): void {
  server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => {
    if (refuseHostless(req, res)) return;
    sendProblem(res, 417, `Only "Expect: 100-continue" is understood, not "${req.headers.expect}".`);
  });
  // Without a listener Node drops a CONNECT without a word; this is no proxy.
  server.on("connect", (_req: IncomingMessage, socket: Duplex) => refuseUpgrade(socket, 501, "CONNECT is not supported: this server is not a proxy."));
  guardListeners(server, "request", (req: IncomingMessage, res: ServerResponse) => refuseHostless(req, res));
  guardListeners(server, "upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!offersWebSocket(req)) {
      serveAsPlainRequest(server, req, socket, head);
      return true;
    }
    if (!lacksHost(req)) return false;
    refuseUpgrade(socket, 400, HOSTLESS);
    return true;
  });
}

/** A problem+json answer on a socket no HTTP response owns (an upgrade); it ends the connection. */
export function refuseUpgrade(socket: Duplex, status: number, detail: string, options: { headers?: Record<string, string>; members?: object } = {}): void {
  // Node stopped listening to this socket's errors when it handed the upgrade over.
  if (socket.listenerCount("error") === 0) socket.on("error", () => socket.destroy());
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(rawProblemResponse(status, detail, options));
}

/**
 * `ws`' WebSocketServer, with its handshake refusals (an invalid Sec-WebSocket-Key, a
 * missing version, a POST, a server shutting down) as problem+json rather than text/html.
 * engine.io takes it as its `wsEngine`; the lobby's door is one.
 */
export class ProblemWebSocketServer extends WebSocketServer {
  private closing = false;

  constructor(options: ServerOptions) {
    super(options);
    this.on("wsClientError", (error: Error, socket: Duplex, req: IncomingMessage) => refuseHandshake(socket, req, error.message));
  }

  override handleUpgrade(...args: Parameters<WebSocketServer["handleUpgrade"]>): void {
    const [, socket] = args;
    if (this.closing) return refuseUpgrade(socket, 503, "The server is shutting down.", { headers: { "Retry-After": "5" } });
    super.handleUpgrade(...args);
  }

  override close(callback?: (error?: Error) => void): void {
    this.closing = true;
    super.close(callback);
  }
}

function refuseHandshake(socket: Duplex, req: IncomingMessage, message: string): void {
  if (req.method !== "GET") return refuseUpgrade(socket, 405, "A WebSocket handshake is a GET.", { headers: { Allow: "GET" } });
  const version = Number(req.headers["sec-websocket-version"]);
  const headers: Record<string, string> = version === 13 || version === 8 ? {} : { "Sec-WebSocket-Version": "13, 8" };
  refuseUpgrade(socket, 400, `${message}.`, { headers });
}

/** The parts of engine.io's Server this file hooks into. */
interface Engine {
  use(middleware: (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void): void;
  on(event: "connection_error", listener: (error: { req: IncomingMessage & { upgrade?: boolean; websocket?: WebSocket }; code: number; message: string; context?: { message?: string } }) => void): unknown;
}

/** engine.io's error codes (Server.errors) that are not a plain 400. */
const ENGINE_FORBIDDEN = 4;

/**
 * engine.io's own answers as problem+json. A refused Socket.IO request keeps engine.io's
 * `code` and `message` as members of the problem (socket.io-client does not read the
 * body, but code that looks at `connect_error`'s `context.responseText` still finds
 * them); the polling transport's bare 400 and 413 get a body, and its 500 for a method
 * it does not serve is the 405 it is.
 */
export function answerEngineErrorsAsProblems(engine: Engine): void {
  engine.use((req, res, next) => {
    if (res instanceof http.ServerResponse) presentPollingErrors(req, res);
    next();
  });
  engine.on("connection_error", ({ req, code, message, context }) => {
    // Polling requests are answered through their ServerResponse (above). (`upgrade` is
    // Node's flag of an upgrade request.)
    if (!req.upgrade) return;
    const text = context?.message ?? message;
    // A handshake refused once the WebSocket is open (an unsupported protocol revision)
    // has no HTTP answer left to give: engine.io would write one into the WebSocket
    // stream. A close frame says it instead; the ended socket keeps engine.io from writing.
    if (req.websocket) {
      req.websocket.close(1002, closeReason(text));
      req.socket.end();
      return;
    }
    const status = code === ENGINE_FORBIDDEN ? 403 : 400;
    refuseUpgrade(req.socket, status, `Socket.IO refused the connection: ${text}.`, { members: { code, message: text } });
  });
}

const POLLING_DETAILS: Record<number, string> = {
  400: "Socket.IO refused this poll: another one of the session is under way, or its body is not one it reads.",
  413: "The Socket.IO payload is too large.",
};

/** Rewrites the error answers engine.io writes on a polling request, as they are written. */
function presentPollingErrors(req: IncomingMessage, res: ServerResponse): void {
  const writeHead = res.writeHead.bind(res) as (status: number, headers?: http.OutgoingHttpHeaders) => ServerResponse;
  const end = res.end.bind(res) as (body?: string) => ServerResponse;
  res.writeHead = ((status: number, ...rest: unknown[]) => {
    // Below 400, or a problem already (the slow-client cut's 408): as written.
    if (status < 400 || rest.some(isProblemHeaders)) return (writeHead as (...args: unknown[]) => ServerResponse)(status, ...rest);
    // engine.io writes the body next, in end(): the problem is built from it.
    res.end = ((chunk?: unknown) => {
      const engineBody = parseEngineBody(chunk);
      const methodRefused = status === 500 && req.method !== "GET" && req.method !== "POST";
      const answer = methodRefused ? 405 : status;
      const detail = methodRefused
        ? `Socket.IO polling takes GET and POST, not ${req.method}.`
        : engineBody ? `Socket.IO refused the request: ${engineBody.message}.` : (POLLING_DETAILS[answer] ?? "Socket.IO refused the request.");
      const body = JSON.stringify({ ...problem(answer, detail), ...(engineBody ?? {}) });
      writeHead(answer, {
        "Content-Type": PROBLEM_CONTENT_TYPE,
        "Content-Length": Buffer.byteLength(body),
        ...(methodRefused ? { Allow: "GET, POST, OPTIONS" } : {}),
      });
      return end(body);
    }) as ServerResponse["end"];
    return res;
  }) as ServerResponse["writeHead"];
}

function isProblemHeaders(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  return Object.entries(value).some(([name, header]) => name.toLowerCase() === "content-type" && header === PROBLEM_CONTENT_TYPE);
}

function parseEngineBody(chunk: unknown): { code: number; message: string } | null {
  if (typeof chunk !== "string") return null;
  try {
    const parsed = JSON.parse(chunk) as { code?: unknown; message?: unknown };
    return typeof parsed.code === "number" && typeof parsed.message === "string" ? { code: parsed.code, message: parsed.message } : null;
  } catch {
    return null;
  }
}

/** A WebSocket close reason is at most 123 bytes of UTF-8 (ws throws past that). */
function closeReason(text: string): string {
  let reason = text.slice(0, 123);
  while (Buffer.byteLength(reason) > 123) reason = reason.slice(0, -1);
  return reason;
}

const HOSTLESS = "An HTTP/1.1 request must carry a Host header.";

function lacksHost(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && req.headers.host === undefined;
}

/** RFC 9112 §3.2: a 400 for an HTTP/1.1 request without Host (what Node answers with no body). */
function refuseHostless(req: IncomingMessage, res: ServerResponse): boolean {
  if (!lacksHost(req)) return false;
  res.shouldKeepAlive = false;
  sendProblem(res, 400, HOSTLESS);
  return true;
}

/**
 * Replaces an event's listeners by one that runs `answered` first and the others only
 * when it did not answer: what engine.io does to the "request" listeners it wraps.
 */
function guardListeners<A extends unknown[]>(server: http.Server, event: string, answered: (...args: A) => boolean): void {
  const listeners = server.listeners(event) as Array<(...args: A) => void>;
  server.removeAllListeners(event);
  server.on(event, (...args: A) => {
    if (answered(...args)) return;
    for (const listener of listeners) listener.apply(server, args);
  });
}

function tokens(value: string | undefined): string[] {
  return (value ?? "").split(",").map((t) => t.trim().toLowerCase()).filter(Boolean);
}

function offersWebSocket(req: IncomingMessage): boolean {
  return tokens(req.headers.upgrade).includes("websocket");
}

const UPGRADE_ONLY = new Set(["upgrade", "http2-settings"]);

/**
 * An upgrade to anything but WebSocket (`h2c`, which `curl --http2` asks for over
 * cleartext) is declined, as RFC 9110 §7.8 lets a server do: the request is given back to
 * the HTTP server without its Upgrade headers, as the connection's next request, and
 * served like any other. Node emits "upgrade" for every Upgrade header once there is a
 * listener, and has by then stopped parsing the connection.
 */
function serveAsPlainRequest(server: http.Server, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  // A response to an earlier request of the connection (pipelined) is still being written:
  // the request waits for it, as Node would queue it.
  const earlier = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (earlier) {
    earlier.once("finish", () => serveAsPlainRequest(server, req, socket, head));
    return;
  }
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i];
    const lower = name.toLowerCase();
    let value = req.rawHeaders[i + 1];
    if (UPGRADE_ONLY.has(lower)) continue;
    if (lower === "connection") {
      value = value.split(",").map((t) => t.trim()).filter((t) => t && !UPGRADE_ONLY.has(t.toLowerCase())).join(", ");
      if (!value) continue;
    }
    lines.push(`${name}: ${value}`);
  }
  // Header values are Latin-1 to Node's parser; the bytes go back as they came.
  socket.unshift(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), head]));
  // The keep-alive timeout an earlier request left on the socket would cut this one off.
  (socket as Duplex & { setTimeout?: (ms: number) => void }).setTimeout?.(0);
  // Only Node's own listener, which gives the socket a parser: the other "connection"
  // listeners (per-address counts, say) have seen this connection once already.
  const parse = server.listeners("connection").find((listener) => listener.name === "connectionListener");
  if (parse) parse.call(server, socket);
  else server.emit("connection", socket);
}
