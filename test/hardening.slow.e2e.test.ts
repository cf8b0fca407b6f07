import http from "node:http";
import net from "node:net";
import { Writable } from "node:stream";
import WebSocket from "ws";
import { createLogger } from "../src/logger";
import { connectSocket } from "./support/realtime";
import { registerUser, startTestServer, type TestServer } from "./support/test-server";

/**
 * Slow clients cannot hold the server (issue #13, item 2). With small limits: a request
 * whose body (or headers) stops arriving is answered 408 and closed within the limit; a
 * multipart upload that keeps sending outlives the total limit and is cut only once it
 * goes idle; an event stream outlives the limit; connections beyond the cap per address
 * are refused at once, with one log line for many, while other clients are served.
 */
const LIMIT_S = 1;
const CAP = 20;
/** The limit, plus the check interval, plus scheduling on a busy test machine. */
const CUT_WITHIN_MS = LIMIT_S * 1000 + 2500;

let t: TestServer;
let port: number;
const logged: Array<Record<string, unknown>> = [];
const open: net.Socket[] = [];

beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) logged.push(JSON.parse(line));
      callback();
    },
  });
  t = await startTestServer(
    { REQUEST_TIMEOUT_SECONDS: String(LIMIT_S), UPLOAD_IDLE_TIMEOUT_SECONDS: String(LIMIT_S), MAX_INCOMPLETE_CONNECTIONS_PER_ADDRESS: String(CAP), LOG_LEVEL: "warn" },
    undefined,
    createLogger("warn", sink),
  );
  port = Number(new URL(t.url).port);
});
afterEach(() => {
  for (const socket of open.splice(0)) socket.destroy();
});
afterAll(async () => {
  await t.close();
});

interface Raw {
  socket: net.Socket;
  received(): string;
  /** Resolves when the server closes the connection: what it answered, and when (ms after connecting). */
  closed: Promise<{ text: string; afterMs: number }>;
}

function connect(localAddress = "127.0.0.1"): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect({ port, host: "127.0.0.1", localAddress });
    open.push(socket);
    let text = "";
    socket.on("data", (d) => (text += d.toString("latin1")));
    const closed = new Promise<{ text: string; afterMs: number }>((done) => socket.on("close", () => done({ text, afterMs: Date.now() - started })));
    socket.on("error", () => undefined);
    socket.once("connect", () => resolve({ socket, received: () => text, closed }));
    socket.once("error", reject);
  });
}

/** The start of a multipart video upload that announces a megabyte. */
function uploadHead(token: string): string {
  const boundary = "----slow";
  return (
    `POST /videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 1000000\r\n\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="video"; filename="a.webm"\r\nContent-Type: video/webm\r\n\r\n`
  );
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
const bodyOf = (text: string) => JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));

/** Read from another loopback address: 127.0.0.1 may be at its cap. */
async function metric(reason: string): Promise<number> {
  const { text } = await getFrom("127.0.0.2", "/metrics");
  return Number(new RegExp(`^convene_slow_clients_total\\{reason="${reason}"\\} (\\d+)`, "m").exec(text)?.[1] ?? 0);
}

/** A plain request from another loopback address (not the one being capped). */
function getFrom(localAddress: string, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, localAddress, agent: false }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
  });
}

test("a login whose body stops arriving is answered 408 problem+json and closed within the limit", async () => {
  const before = await metric("request_timeout");
  const c = await connect();
  c.socket.write("POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{");
  const { text, afterMs } = await c.closed;
  expect(statusOf(text)).toBe(408);
  expect(text).toMatch(/\r\ncontent-type: application\/problem\+json/i);
  expect(text).toMatch(/\r\nconnection: close/i);
  expect(bodyOf(text)).toMatchObject({ status: 408, detail: expect.stringMatching(/too long/) });
  expect(afterMs).toBeGreaterThanOrEqual(LIMIT_S * 1000 - 50);
  expect(afterMs).toBeLessThan(CUT_WITHIN_MS);
  expect(await metric("request_timeout")).toBe(before + 1);
});

test("headers trickled a byte at a time (slowloris) are cut with a 408 within the limit", async () => {
  const c = await connect();
  c.socket.write("GET /health HTTP/1.1\r\nHost: x\r\n");
  const drip = setInterval(() => c.socket.writable && c.socket.write("X"), 100);
  const { text, afterMs } = await c.closed;
  clearInterval(drip);
  expect(statusOf(text)).toBe(408);
  expect(afterMs).toBeLessThan(CUT_WITHIN_MS);
  expect(await metric("headers_timeout")).toBeGreaterThanOrEqual(1);
});

test("a connection that sends nothing is cut within the limit", async () => {
  const c = await connect();
  const { afterMs } = await c.closed;
  expect(afterMs).toBeLessThan(CUT_WITHIN_MS);
});

test("a multipart upload that keeps sending outlives the total limit; once it goes idle it is cut with a 408", async () => {
  const user = await registerUser(t);
  const c = await connect();
  c.socket.write(uploadHead(user.token));
  // A chunk every 300 ms, for three times the total limit.
  const started = Date.now();
  while (Date.now() - started < 3 * LIMIT_S * 1000) {
    await new Promise((r) => setTimeout(r, 300));
    expect(c.socket.destroyed).toBe(false);
    c.socket.write(Buffer.alloc(64, 1));
  }
  expect(c.received()).toBe("");
  const idleFrom = Date.now();
  const { text } = await c.closed;
  expect(statusOf(text)).toBe(408);
  expect(bodyOf(text)).toMatchObject({ status: 408, detail: expect.stringMatching(/upload stopped/) });
  expect(Date.now() - idleFrom).toBeLessThan(CUT_WITHIN_MS);
  expect(await metric("upload_idle")).toBeGreaterThanOrEqual(1);
});

test("an event stream is not cut: only receiving the request is timed", async () => {
  const user = await registerUser(t);
  const c = await connect();
  c.socket.write(`GET /chat/subscribe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.token}\r\nAccept: text/event-stream\r\n\r\n`);
  await new Promise((r) => setTimeout(r, 3 * LIMIT_S * 1000));
  expect(statusOf(c.received())).toBe(200);
  expect(c.received()).toMatch(/text\/event-stream/);
  expect(c.socket.destroyed).toBe(false);
});

test("connections beyond the cap per address are refused at once; other clients are served meanwhile; one log line for many", async () => {
  const before = await metric("too_many_incomplete");
  logged.length = 0;
  // The cap's worth of uploads that keep trickling (so they stay incomplete for as long as the test needs).
  const user = await registerUser(t);
  const held = await Promise.all(Array.from({ length: CAP }, () => connect()));
  for (const c of held) c.socket.write(uploadHead(user.token));
  const drip = setInterval(() => held.forEach((c) => c.socket.writable && c.socket.write(Buffer.alloc(16, 1))), 250);
  await new Promise((r) => setTimeout(r, 100));
  const refused = await Promise.all(Array.from({ length: 5 }, () => connect()));
  for (const r of refused) {
    const { text, afterMs } = await r.closed;
    expect(statusOf(text)).toBe(429);
    expect(bodyOf(text)).toMatchObject({ status: 429 });
    expect(afterMs).toBeLessThan(1000);
  }
  // Another address is served while 127.0.0.1 is at its cap.
  expect((await getFrom("127.0.0.2", "/health")).status).toBe(200);
  expect(await metric("too_many_incomplete")).toBe(before + 5);
  // Once they stop sending, the held ones are cut; then 127.0.0.1 is served again.
  clearInterval(drip);
  for (const c of held) expect(statusOf((await c.closed).text)).toBe(408);
  expect((await getFrom("127.0.0.1", "/health")).status).toBe(200);
  // 5 refusals and 20 cuts: summed in at most one line per ten seconds (a line already due may come first).
  const lines = () => logged.filter((l) => String(l.msg).startsWith("refused or cut"));
  const refusals = () => lines().reduce((sum, l) => sum + Number((l.slowClients as Record<string, number>).too_many_incomplete ?? 0), 0);
  const deadline = Date.now() + 25_000;
  while (refusals() < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(refusals()).toBe(5);
  expect(lines().length).toBeLessThanOrEqual(2);
  expect(lines()[0]).toMatchObject({ level: 40, limits: { maxIncompletePerAddress: CAP } });
});

test("Socket.IO WebSockets count as incomplete until their handshake is accepted, and not after", async () => {
  const user = await registerUser(t);
  // More accepted Socket.IO clients than the cap: they are complete and do not count.
  const clients = await Promise.all(Array.from({ length: CAP + 5 }, () => connectSocket(t.url, { token: user.token })));
  try {
    expect(clients.every((c) => c.connected)).toBe(true);
    // The cap's worth of WebSockets that never send Socket.IO's CONNECT.
    const bare = await Promise.all(
      Array.from({ length: CAP }, () => new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`${t.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
        ws.once("open", () => resolve(ws));
        ws.once("error", reject);
      })),
    );
    try {
      const { text } = await (await connect()).closed;
      expect(statusOf(text)).toBe(429);
    } finally {
      for (const ws of bare) ws.terminate();
    }
    // Once they are gone, 127.0.0.1 is served again.
    const deadline = Date.now() + 5000;
    let status = 0;
    while ((status = (await getFrom("127.0.0.1", "/health").catch(() => ({ status: 0 }))).status) !== 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(status).toBe(200);
  } finally {
    for (const c of clients) c.close();
  }
});

test("a Socket.IO WebSocket that never sends its CONNECT is closed within the limit", async () => {
  const opened = Date.now();
  const ws = new WebSocket(`${t.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  await new Promise((resolve) => ws.once("close", resolve));
  expect(Date.now() - opened).toBeLessThan(CUT_WITHIN_MS);
});
