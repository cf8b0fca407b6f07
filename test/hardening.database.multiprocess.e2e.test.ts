import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";
import type { Socket } from "socket.io-client";
import WebSocket from "ws";
import { startProcess, type ServerProcess } from "./support/processes";
import { connectSocket, emitWithAck } from "./support/realtime";
import { basic, freshDatabase, testDatabase, type FreshDatabase } from "./support/test-server";

/**
 * The server as its own process, with a pool of two connections, on a database that
 * (1) refuses connections (ALLOW_CONNECTIONS false, its backends terminated) and (2) has
 * every pooled connection held by requests waiting on a lock. Every door answers 503 or
 * its equivalent, with when to retry: REST and SSE problem+json with Retry-After, the
 * Socket.IO ack's `retry_after`, a handshake's `unavailable`, the lobby WebSocket's
 * `service_unavailable`. Never a 500, never a hang; and it recovers by itself.
 */
const enabled = testDatabase === "postgres";
const describeDb = enabled ? describe : describe.skip;
/** Longer than any answer may take: pool wait 5 s, statement timeout 15 s. */
const NO_HANG_MS = 25_000;

let database: FreshDatabase;
let name: string;
let server: ServerProcess;
let url: string;
let admin: Client;
const closers: Array<() => void> = [];

interface Account {
  username: string;
  password: string;
  token: string;
}
let user: Account;
let channelId: string;

async function call(method: string, route: string, headers: Record<string, string> = {}, body?: unknown) {
  const res = await fetch(url + route, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(NO_HANG_MS),
  });
  // An event stream that opened is not read to its end.
  const text = res.headers.get("content-type")?.startsWith("text/event-stream") ? "" : await res.text();
  if (!text) void res.body?.cancel().catch(() => undefined);
  return { status: res.status, retryAfter: res.headers.get("retry-after"), type: res.headers.get("content-type") ?? "", body: text ? JSON.parse(text) : null };
}

async function signIn(username: string, password: string): Promise<string> {
  const res = await call("POST", "/auth/login", {}, { username, password });
  if (res.status !== 200) throw new Error(`login: ${res.status}`);
  return res.body.token;
}

async function lobbyClient(username: string, password: string) {
  const ws = new WebSocket(url.replace("http", "ws") + "/lobby_api");
  closers.push(() => ws.terminate());
  const inbox: any[] = [];
  ws.on("message", (data) => inbox.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const ask = async (message: object) => {
    ws.send(JSON.stringify(message));
    for (let i = 0; i < NO_HANG_MS / 25 && inbox.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    return inbox.shift();
  };
  expect(await ask({ $type: "login", username, password })).toMatchObject({ $type: "login_successful" });
  return ask;
}

type Probe = { door: string; ok: boolean; answer: unknown };

/** Every door once, at the same time; each says whether it answered "unavailable, retry later". */
async function probeDoors(socket: Socket, lobby: (message: object) => Promise<any>, freshToken: string): Promise<Probe[]> {
  const auth = { Authorization: `Bearer ${user.token}` };
  const unavailable = (r: Awaited<ReturnType<typeof call>>) => r.status === 503 && /^\d+$/.test(r.retryAfter ?? "") && r.type.includes("application/problem+json");
  const rest = async (door: string, run: () => ReturnType<typeof call>): Promise<Probe> => {
    const r = await run();
    return { door, ok: unavailable(r), answer: { status: r.status, retryAfter: r.retryAfter, type: r.type } };
  };
  return Promise.all([
    rest("REST GET", () => call("GET", "/chat/rooms", auth)),
    rest("REST POST", () => call("POST", `/chat/rooms/${channelId}/messages`, auth, { body: "while down" })),
    rest("SSE open", () => call("GET", `/chat/rooms/${channelId}/subscribe`, auth)),
    rest("lobby REST", () => call("GET", "/lobby_api/tables", { Authorization: basic(user.username, user.password) })),
    (async (): Promise<Probe> => {
      const ack = await emitWithAck(socket, "chat:send", { channel_id: channelId, body: "while down" });
      return { door: "Socket.IO ack", ok: ack.ok === false && ack.error.status === 503 && ack.error.retry_after > 0, answer: ack };
    })(),
    (async (): Promise<Probe> => {
      // A token not verified lately: the handshake must ask the database.
      const error = await connectSocket(url, { token: freshToken }).then(
        (s) => {
          s.close();
          return null;
        },
        (e: Error & { data?: { retry_after?: number } }) => e,
      );
      return { door: "Socket.IO handshake", ok: error?.message === "unavailable" && (error.data?.retry_after ?? 0) > 0, answer: error && { message: error.message, data: error.data } };
    })(),
    (async (): Promise<Probe> => {
      const ws = new WebSocket(url.replace("http", "ws") + "/lobby_api");
      closers.push(() => ws.terminate());
      const answer = await new Promise<any>((resolve, reject) => {
        ws.once("error", reject).once("open", () => ws.send(JSON.stringify({ $type: "login", username: user.username, password: user.password })));
        ws.once("message", (data) => resolve(JSON.parse(data.toString())));
      });
      ws.terminate();
      return { door: "lobby WebSocket login", ok: answer?.$type === "service_unavailable" && answer.retry_after > 0, answer };
    })(),
    (async (): Promise<Probe> => {
      const answer = await lobby({ $type: "subscribe_tables" });
      return { door: "lobby WebSocket", ok: answer?.$type === "service_unavailable" && answer.retry_after > 0, answer };
    })(),
  ]);
}

async function expectRecovered(socket: Socket, lobby: (message: object) => Promise<any>): Promise<void> {
  const auth = { Authorization: `Bearer ${user.token}` };
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i += 1) {
    status = (await call("GET", "/chat/rooms", auth)).status;
    if (status !== 200) await new Promise((r) => setTimeout(r, 200));
  }
  expect(status).toBe(200);
  expect((await call("POST", `/chat/rooms/${channelId}/messages`, auth, { body: "back" })).status).toBe(201);
  expect((await call("GET", "/lobby_api/tables", { Authorization: basic(user.username, user.password) })).status).toBe(200);
  expect((await call("GET", "/ready")).status).toBe(200);
  expect(await emitWithAck(socket, "chat:send", { channel_id: channelId, body: "back" })).toMatchObject({ ok: true });
  expect(await lobby({ $type: "subscribe_tables" })).toMatchObject({ $type: "table_list" });
}

beforeAll(async () => {
  if (!enabled) return;
  database = await freshDatabase();
  if (database.config.kind !== "postgres") throw new Error("postgres expected");
  name = new URL(database.config.url).pathname.slice(1);
  server = startProcess({
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: database.config.url,
    DATABASE_POOL_SIZE: "2",
    JWT_SECRET: randomBytes(32).toString("hex"),
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "convene-db-down-")),
    BCRYPT_ROUNDS: "4",
    RATE_LIMIT_AUTH_PER_MINUTE: "0",
    RATE_LIMIT_POSTS_PER_MINUTE: "0",
    LOG_LEVEL: "info",
  });
  url = await server.listening(60_000);
  admin = new Client({ connectionString: process.env.DATABASE_URL });
  await admin.connect();
  const username = `down_${randomBytes(4).toString("hex")}`;
  const res = await call("POST", "/auth/register", {}, { username, password: "correct horse" });
  user = { username, password: "correct horse", token: res.body.token };
  channelId = (await call("POST", "/chat/rooms", { Authorization: `Bearer ${user.token}` }, { name: `down-${username}` })).body.id;
}, 90_000);

afterAll(async () => {
  if (!enabled) return;
  for (const close of closers) close();
  await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`).catch(() => undefined);
  await admin.end();
  await server.stop("SIGKILL");
  await database.drop();
});

/** Neither scenario may make the process answer a 500 or log an error as a bug (what each door logs for one). */
const unexpectedErrors = () =>
  server
    .output()
    .split("\n")
    .filter((line) => /"statusCode":500|"msg":"(unhandled error|socket handler failed|lobby message failed)"|uncaught|unhandledRejection/i.test(line));

describeDb("a database failure is 503 on every door (separate process, Postgres)", () => {
  it("while the database refuses connections, then recovers", async () => {
    const socket = await connectSocket(url, { token: user.token });
    closers.push(() => socket.close());
    const lobby = await lobbyClient(user.username, user.password);
    // Used once now (a Basic verification is cached), so the lobby REST reaches the database below.
    expect((await call("GET", "/lobby_api/tables", { Authorization: basic(user.username, user.password) })).status).toBe(200);
    const freshToken = await signIn(user.username, user.password);

    await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
    try {
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [name]);
      const started = Date.now();
      const probes = await probeDoors(socket, lobby, freshToken);
      const elapsed = Date.now() - started;
      console.log(`refusing connections: ${probes.length} doors answered in ${elapsed} ms`, JSON.stringify(probes));
      expect(probes.filter((p) => !p.ok)).toEqual([]);
      expect((await call("GET", "/ready")).status).toBe(503);
    } finally {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
    }
    await expectRecovered(socket, lobby);
    expect(unexpectedErrors()).toEqual([]);
  }, 120_000);

  it("while every pooled connection is held (a pool of 2 waiting on a lock), then recovers", async () => {
    const socket = await connectSocket(url, { token: user.token });
    closers.push(() => socket.close());
    const lobby = await lobbyClient(user.username, user.password);
    const freshToken = await signIn(user.username, user.password);
    const locker = new Client({ connectionString: database.config.kind === "postgres" ? database.config.url : "" });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE lobby_state IN ACCESS EXCLUSIVE MODE");
      // Two lobby reads take both pooled connections and wait on the lock.
      const holders = [0, 1].map(() => call("GET", "/lobby_api/tables", { Authorization: `Bearer ${user.token}` }));
      for (let i = 0; i < 200; i++) {
        const { rows } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`, [name]);
        if (rows[0].n >= 2) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const started = Date.now();
      const probes = await probeDoors(socket, lobby, freshToken);
      const elapsed = Date.now() - started;
      console.log(`pool exhausted: ${probes.length} doors answered in ${elapsed} ms`, JSON.stringify(probes));
      expect(probes.filter((p) => !p.ok)).toEqual([]);
      await locker.query("ROLLBACK");
      // The held requests finish (200) or gave up at the statement timeout (503): never a 500.
      for (const held of await Promise.all(holders)) expect([200, 503]).toContain(held.status);
    } finally {
      await locker.end();
    }
    await expectRecovered(socket, lobby);
    expect(unexpectedErrors()).toEqual([]);
  }, 120_000);
});
