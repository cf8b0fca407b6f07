import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { io } from "socket.io-client";
import { collect, connectSocket, emitWithAck, openSse } from "./support/realtime";
import { startProcess, type ServerProcess } from "./support/processes";
import { freshDatabase, testDatabase, type FreshDatabase } from "./support/test-server";

/**
 * Several server processes sharing Postgres and Redis behave as one. Needs a real
 * Postgres and Redis, so it runs in the postgres project when REDIS_URL is set.
 */
const enabled = testDatabase === "postgres" && !!process.env.REDIS_URL;
const describeShared = enabled ? describe : describe.skip;

let database: FreshDatabase;
const processes: ServerProcess[] = [];
let sharedEnv: Record<string, string>;

beforeAll(async () => {
  if (!enabled) return;
  database = await freshDatabase();
  if (database.config.kind !== "postgres") throw new Error("postgres expected");
  sharedEnv = {
    HOST: "127.0.0.1",
    DATABASE_URL: database.config.url,
    REDIS_URL: process.env.REDIS_URL!,
    REDIS_PREFIX: `convene-test-${randomBytes(6).toString("hex")}:`,
    JWT_SECRET: randomBytes(32).toString("hex"),
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "convene-mp-")),
    BCRYPT_ROUNDS: "4",
    RATE_LIMIT_AUTH_PER_MINUTE: "0",
    LOG_LEVEL: "info",
  };
});

afterAll(async () => {
  if (!enabled) return;
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await database.drop();
});

async function start(env: Record<string, string> = {}) {
  const server = startProcess({ ...sharedEnv, PORT: "0", ...env });
  processes.push(server);
  return { server, url: await server.listening() };
}

async function json(url: string, method: string, body?: unknown, token?: string) {
  const res = await fetch(url, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

describeShared("two server processes on one Postgres and one Redis", () => {
  it("deliver a message posted on one to Socket.IO and SSE subscribers on the other, in order", async () => {
    const a = await start();
    const b = await start();
    const alice = (await json(`${a.url}/auth/register`, "POST", { username: "mp_alice", password: "mp password" })).body;
    const bob = (await json(`${b.url}/auth/register`, "POST", { username: "mp_bob", password: "mp password" })).body;
    const channel = (await json(`${a.url}/chat/rooms`, "POST", { name: "shared" }, alice.token)).body;

    // Subscribers on B; posters on A, over REST and Socket.IO at once.
    const socketOnB = await connectSocket(b.url, { token: bob.token });
    const received = collect(socketOnB, "chat:message");
    expect((await emitWithAck(socketOnB, "chat:subscribe", { channel_id: channel.id })).ok).toBe(true);
    const sseOnB = openSse(`${b.url}/chat/rooms/${channel.id}/subscribe?access_token=${bob.token}`);
    await sseOnB.ready;
    const dmsOnB = collect(socketOnB, "dm:message");

    const posterOnA = await connectSocket(a.url, { token: alice.token });
    const posts = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        i % 2
          ? json(`${a.url}/chat/rooms/${channel.id}/messages`, "POST", { body: `rest ${i}` }, alice.token).then((r) => r.body.id as string)
          : emitWithAck(posterOnA, "chat:send", { channel_id: channel.id, body: `socket ${i}` }).then((r) => r.message.id as string),
      ),
    );
    const history = (await json(`${b.url}/chat/rooms/${channel.id}/messages?after=0&limit=100`, "GET", undefined, bob.token)).body;
    const committedOrder = history.items.map((m: { id: string }) => m.id);
    expect([...committedOrder].sort()).toEqual([...posts].sort());

    expect((await received.next(30)).map((m) => m.id)).toEqual(committedOrder);
    expect((await sseOnB.waitFor(30)).map((e) => e.id)).toEqual(committedOrder);

    const dm = await emitWithAck(posterOnA, "dm:send", { to: "mp_bob", body: "across processes" });
    expect((await dmsOnB.next(1))[0].id).toBe(dm.message.id);

    // Logging out on A ends the session on B too.
    const disconnected = new Promise((resolve) => socketOnB.once("disconnect", resolve));
    expect((await fetch(`${a.url}/auth/logout`, { method: "POST", headers: { authorization: `Bearer ${bob.token}` } })).status).toBe(204);
    await disconnected;
    expect((await fetch(`${b.url}/users/me`, { headers: { authorization: `Bearer ${bob.token}` } })).status).toBe(401);

    sseOnB.close();
    posterOnA.close();
    expect(await a.server.stop()).toBe(0);
    expect(await b.server.stop()).toBe(0);
  });

  it("count a client's login attempts together, in Redis", async () => {
    const limitedEnv = { RATE_LIMIT_AUTH_PER_MINUTE: "3", REDIS_PREFIX: `convene-test-${randomBytes(6).toString("hex")}:` };
    const [a, b] = [await start(limitedEnv), await start(limitedEnv)];
    const login = (url: string) => json(`${url}/auth/login`, "POST", { username: "admin", password: "wrong" });
    expect([(await login(a.url)).status, (await login(b.url)).status, (await login(a.url)).status]).toEqual([401, 401, 401]);
    expect((await login(b.url)).status).toBe(429);
  });

  it("PROCESSES=2 serves Socket.IO long-polling and upgrades through sticky sessions on one port", async () => {
    const cluster = await start({ PROCESSES: "2" });
    expect(cluster.server.output()).toMatch(/"workers":2/);
    const user = (await json(`${cluster.url}/auth/register`, "POST", { username: "mp_carol", password: "mp password" })).body;
    const channel = (await json(`${cluster.url}/chat/rooms`, "POST", { name: "clustered" }, user.token)).body;

    // Default transports: long-polling first, then the WebSocket upgrade; both must stick.
    const clients = await Promise.all(
      Array.from({ length: 6 }, () =>
        new Promise<ReturnType<typeof io>>((resolve, reject) => {
          const socket = io(cluster.url, { auth: { token: user.token }, reconnection: false, forceNew: true });
          socket.once("connect", () => resolve(socket));
          socket.once("connect_error", reject);
        }),
      ),
    );
    const inboxes = clients.map((socket) => collect(socket, "chat:message"));
    for (const socket of clients) expect((await emitWithAck(socket, "chat:subscribe", { channel_id: channel.id })).ok).toBe(true);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await json(`${cluster.url}/chat/rooms/${channel.id}/messages`, "POST", { body: `m${i}` }, user.token)).body.id);
    for (const inbox of inboxes) expect((await inbox.next(10)).map((m) => m.id)).toEqual(ids);
    for (const socket of clients) socket.close();

    expect(await cluster.server.stop()).toBe(0);
    expect(cluster.server.output()).toMatch(/"msg":"stopped"/);
  });
});

if (!enabled) it("needs DATABASE_URL and REDIS_URL (skipped on the embedded database)", () => undefined);
