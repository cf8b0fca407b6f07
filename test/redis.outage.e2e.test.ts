import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import net from "node:net";
import type { Socket } from "socket.io-client";
import WebSocket from "ws";
import { collect, connectSocket, emitWithAck } from "./support/realtime";
import { processEnv, startProcess, type ServerProcess } from "./support/processes";
import { freshDatabase, testDatabase, type FreshDatabase } from "./support/test-server";

/**
 * Redis is optional at every moment. Three server processes on one Postgres and a Redis
 * of this test's own (the machine's is shared: it is never stopped), which the test kills
 * and starts again. While it is down nothing waits on it; once it is back every process
 * catches up by itself, with no later message to show the gap. B resyncs only when Redis
 * returns (BUS_RESYNC_SECONDS is long); C also polls the database while it is down.
 */
const hasRedisServer = spawnSync("redis-server", ["--version"]).status === 0;
const enabled = testDatabase === "postgres" && hasRedisServer;
const describeOutage = enabled ? describe : describe.skip;

/** "No hang": every answer during the outage comes well before this (a bound on behaviour, not a benchmark). */
const ANSWER_BOUND_MS = 3000;
/** At least this long without Redis, so every client is deep in its reconnection attempts. */
const OUTAGE_MS = 6000;

let database: FreshDatabase;
let databaseUrl: string;
let redisPort: number;
let redis: ChildProcess | null = null;
const processes: ServerProcess[] = [];
const sockets: Socket[] = [];
const lobbies: WebSocket[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<void> {
  const child = spawn("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: ["ignore", "pipe", "pipe"] });
  redis = child;
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${output}`)), 10_000);
    child.stdout!.on("data", (d) => {
      output += d;
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", () => reject(new Error(`redis-server exited:\n${output}`)));
  });
}

/** Kills this test's Redis as a crash would: every connection to it drops at once. */
async function killRedis(): Promise<void> {
  const child = redis;
  redis = null;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

beforeAll(async () => {
  if (!enabled) return;
  database = await freshDatabase();
  if (database.config.kind !== "postgres") throw new Error("postgres expected");
  databaseUrl = database.config.url;
  redisPort = await freePort();
  await startRedis();
});

afterAll(async () => {
  if (!enabled) return;
  for (const socket of sockets) socket.close();
  for (const ws of lobbies) ws.terminate();
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await killRedis();
  await database.drop();
});

async function start(env: Record<string, string>, shared: Record<string, string>): Promise<{ server: ServerProcess; url: string }> {
  const server = startProcess({ ...shared, ...env });
  processes.push(server);
  return { server, url: await server.listening() };
}

async function call(url: string, method: string, body?: unknown, token?: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method,
    // A hang fails the test with a clear error rather than at jest's timeout.
    signal: AbortSignal.timeout(10_000),
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function socketOn(url: string, token: string): Promise<Socket> {
  const socket = await connectSocket(url, { token });
  sockets.push(socket);
  return socket;
}

/** A lobby WebSocket signed in with a password (no session: its credentials are the password). */
async function lobbyLogin(url: string, username: string, password: string): Promise<{ closed: () => number | null }> {
  const ws = new WebSocket(url.replace("http", "ws") + "/lobby_api");
  lobbies.push(ws);
  let closed: number | null = null;
  ws.on("close", (code) => (closed = code));
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const answer = new Promise<any>((resolve) => ws.once("message", (data) => resolve(JSON.parse(data.toString()))));
  ws.send(JSON.stringify({ $type: "login", username, password }));
  expect(await answer).toMatchObject({ $type: "login_successful" });
  return { closed: () => closed };
}

async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - started;
}

describeOutage("a Redis outage", () => {
  it("is served through without waiting on Redis, and every process catches up by itself once it returns", async () => {
    const shared = processEnv(databaseUrl, {
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      // The limiters on, high enough not to refuse anything: their stores are exercised.
      RATE_LIMIT_AUTH_PER_MINUTE: "1000",
      RATE_LIMIT_AUTH_PER_ACCOUNT: "1000",
      RATE_LIMIT_POSTS_PER_MINUTE: "1000",
    });
    // One after the other: they would run the migrations at once otherwise.
    const a = await start({}, shared);
    const b = await start({ BUS_RESYNC_SECONDS: "300" }, shared);
    const c = await start({ BUS_RESYNC_SECONDS: "1" }, shared);
    const alice = (await call(`${a.url}/auth/register`, "POST", { username: "outage_alice", password: "outage password" })).body;
    const bob = (await call(`${b.url}/auth/register`, "POST", { username: "outage_bob", password: "outage password" })).body;
    const carol = (await call(`${a.url}/auth/register`, "POST", { username: "outage_carol", password: "outage password" })).body;
    const erin = (await call(`${a.url}/auth/register`, "POST", { username: "outage_erin", password: "outage password" })).body;
    const dave = (await call(`${a.url}/auth/register`, "POST", { username: "outage_dave", password: "outage password" })).body;
    const frank = (await call(`${a.url}/auth/register`, "POST", { username: "outage_frank", password: "outage password" })).body;
    const quiet = (await call(`${a.url}/chat/rooms`, "POST", { name: "quiet" }, alice.token)).body;
    const busy = (await call(`${a.url}/chat/rooms`, "POST", { name: "busy" }, alice.token)).body;
    const [pat, quinn] = [(await call(`${a.url}/pair/users`, "POST")).body, (await call(`${a.url}/pair/users`, "POST")).body];
    const conference = (await call(`${a.url}/rooms`, "POST", { name: "call", capacity: 3 }, alice.token)).body;
    expect((await call(`${b.url}/rooms/${conference.guid}/join`, "POST", undefined, bob.token)).status).toBe(200);
    expect((await call(`${a.url}/rooms/${conference.guid}/join`, "POST", undefined, frank.token)).status).toBe(200);

    // Bob follows the quiet channel and his direct messages on every process; Carol is connected to B and C.
    const bobs = { a: await socketOn(a.url, bob.token), b: await socketOn(b.url, bob.token), c: await socketOn(c.url, bob.token) };
    const channelInbox = { a: collect(bobs.a, "chat:message"), b: collect(bobs.b, "chat:message"), c: collect(bobs.c, "chat:message") };
    const dmInbox = { a: collect(bobs.a, "dm:message"), b: collect(bobs.b, "dm:message"), c: collect(bobs.c, "dm:message") };
    for (const socket of Object.values(bobs)) expect((await emitWithAck(socket, "chat:subscribe", { channel_id: quiet.id })).ok).toBe(true);
    const carolOnB = await socketOn(b.url, carol.token);
    const carolOnC = await socketOn(c.url, carol.token);
    const erinOnB = await socketOn(b.url, erin.token);
    const aliceOnA = await socketOn(a.url, alice.token);
    const patOnB = await connectSocket(b.url, { privateId: pat.privateId });
    sockets.push(patOnB);
    const patInbox = collect(patOnB, "pair:message");
    const daveLobbyOnB = await lobbyLogin(b.url, "outage_dave", "outage password");
    // Dave's Basic credentials, verified (and cached) on B.
    const daveBasic = { authorization: `Basic ${Buffer.from("outage_dave:outage password").toString("base64")}` };
    expect((await call(`${b.url}/users/me`, "GET", undefined, undefined, daveBasic)).status).toBe(200);
    // Frank follows the conference room's chat on B; the host removes him during the outage.
    const frankOnB = await socketOn(b.url, frank.token);
    const frankRoomInbox = collect(frankOnB, "room:message");
    expect((await emitWithAck(frankOnB, "room:subscribe", { guid: conference.guid })).ok).toBe(true);

    await killRedis();
    const killed = Date.now();
    for (const { url } of [a, b, c]) await eventually("/ready to say degraded", async () => (await call(`${url}/ready`, "GET")).body?.status === "degraded", 5000);

    // During the outage every request is answered, none waits on Redis.
    // The slowest answer of each kind, and how many were asked.
    const answers: Record<string, number> = {};
    let asked = 0;
    const timed = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
      const started = Date.now();
      const result = await run();
      answers[name] = Math.max(answers[name] ?? 0, Date.now() - started);
      asked += 1;
      return result;
    };
    const ready = await timed("GET /ready", () => call(`${b.url}/ready`, "GET"));
    expect(ready).toEqual({ status: 200, body: { status: "degraded", bus: "down" } });
    const posted = await timed("POST channel message", () => call(`${a.url}/chat/rooms/${quiet.id}/messages`, "POST", { body: "lone message" }, alice.token));
    expect(posted.status).toBe(201);
    const dm = await timed("dm:send ack", () => emitWithAck(aliceOnA, "dm:send", { to: "outage_bob", body: "lone direct message" }));
    expect(dm.ok).toBe(true);
    expect((await timed("POST /auth/login", () => call(`${b.url}/auth/login`, "POST", { username: "outage_alice", password: "outage password" }))).status).toBe(200);
    expect((await timed("POST /auth/login (wrong password)", () => call(`${c.url}/auth/login`, "POST", { username: "outage_alice", password: "wrong password" }))).status).toBe(401);
    expect((await timed("POST /auth/logout", () => call(`${a.url}/auth/logout`, "POST", undefined, carol.token))).status).toBe(204);
    // B cannot hear the logout, so it trusts no cached verification: the database says the session ended.
    expect((await timed("GET /users/me (logged-out token)", () => call(`${b.url}/users/me`, "GET", undefined, carol.token))).status).toBe(401);
    // Signaling reaches the sockets this process has, rather than wait for the others' answer.
    const signal = await timed("room:signal ack", () => emitWithAck(aliceOnA, "room:signal", { guid: conference.guid, to: "outage_bob", data: { type: "offer", sdp: "v=0" } }));
    expect(signal).toEqual({ ok: true, delivered: 1 });
    // A pair room opened during the outage, and a message in it.
    const asQuinn = { "x-private-id": quinn.privateId };
    const pairRoom = (await timed("POST pair connect", () => call(`${a.url}/pair/users/${pat.publicId}/connect`, "POST", undefined, undefined, asQuinn))).body;
    const pairPost = await timed("POST pair message", () => call(`${a.url}/pair/rooms/${pairRoom.roomId}/messages`, "POST", { body: "hello pat" }, undefined, asQuinn));
    expect(pairPost.status).toBe(201);
    // B trusts its cached Basic verification only as far as the row says: unchanged, served.
    expect((await timed("GET /users/me (Basic, cached)", () => call(`${b.url}/users/me`, "GET", undefined, undefined, daveBasic))).status).toBe(200);
    const changed = await timed("PATCH password", () =>
      call(`${a.url}/users/outage_dave`, "PATCH", { password: "new outage password", current_password: "outage password" }, dave.token),
    );
    expect(changed.status).toBe(200);
    // B cannot hear of the change; the row it reads for the cached verification can.
    expect((await timed("GET /users/me (Basic, old password)", () => call(`${b.url}/users/me`, "GET", undefined, undefined, daveBasic))).status).toBe(401);
    expect((await timed("DELETE room participant", () => call(`${a.url}/rooms/${conference.guid}/participants/outage_frank`, "DELETE", undefined, alice.token))).status).toBe(200);
    expect((await timed("GET /chat/rooms", () => call(`${c.url}/chat/rooms`, "GET", undefined, bob.token))).status).toBe(200);
    expect(Math.max(...Object.values(answers))).toBeLessThan(ANSWER_BOUND_MS);

    // The poster's own process delivers at once; C, polling the database, during the outage too.
    expect((await channelInbox.a.next(1, 5000))[0].id).toBe(posted.body.id);
    expect((await dmInbox.a.next(1, 5000))[0].id).toBe(dm.message.id);
    expect((await channelInbox.c.next(1, 5000))[0].id).toBe(posted.body.id);
    expect((await dmInbox.c.next(1, 5000))[0].id).toBe(dm.message.id);
    await eventually("Carol's socket on C to end during the outage", () => carolOnC.disconnected, 5000);
    // B resyncs only once Redis is back: nothing has reached it yet, and Carol is still connected there.
    expect(channelInbox.b.items).toHaveLength(0);
    expect(dmInbox.b.items).toHaveLength(0);
    expect(carolOnB.connected).toBe(true);
    expect(daveLobbyOnB.closed()).toBeNull();
    expect(patInbox.items).toHaveLength(0);

    // A process started while Redis is down serves (degraded) and joins once Redis is back.
    const d = await start({}, shared);
    expect((await call(`${d.url}/ready`, "GET")).body).toEqual({ status: "degraded", bus: "down" });
    const bobOnD = await socketOn(d.url, bob.token);
    const inboxOnD = collect(bobOnD, "chat:message");
    expect((await emitWithAck(bobOnD, "chat:subscribe", { channel_id: quiet.id })).ok).toBe(true);

    // Still answering, with no Redis for a while.
    while (Date.now() - killed < OUTAGE_MS) {
      expect((await timed("POST message (busy channel)", () => call(`${b.url}/chat/rooms/${busy.id}/messages`, "POST", { body: "busy" }, alice.token))).status).toBe(201);
      expect((await timed("POST /auth/login (again)", () => call(`${c.url}/auth/login`, "POST", { username: "outage_bob", password: "outage password" }))).status).toBe(200);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(Math.max(...Object.values(answers))).toBeLessThan(ANSWER_BOUND_MS);

    // Redis returns; no later message is posted: B catches up by itself.
    await startRedis();
    const back = Date.now();
    await channelInbox.b.next(1, 15_000);
    await dmInbox.b.next(1, 15_000);
    expect(channelInbox.b.items.map((m) => m.id)).toEqual([posted.body.id]);
    expect(dmInbox.b.items.map((m) => m.id)).toEqual([dm.message.id]);
    expect((await patInbox.next(1, 15_000)).map((m) => [m.id, m.room_id])).toEqual([[pairPost.body.id, pairRoom.roomId]]);
    await eventually("Carol's socket on B to end", () => carolOnB.disconnected);
    await eventually("Dave's lobby login on B to end", () => daveLobbyOnB.closed() !== null);
    const caughtUp = Date.now() - back;
    for (const { url } of [a, b, c, d]) await eventually("/ready to say ok", async () => (await call(`${url}/ready`, "GET")).body?.status === "ok");

    // Frank, removed while B could not hear it, left the room's channel on B at the resync:
    // the room's chat no longer reaches him there (Alice's socket is the control).
    const aliceRoomInbox = collect(aliceOnA, "room:message");
    expect((await emitWithAck(aliceOnA, "room:subscribe", { guid: conference.guid })).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 1000));
    const roomPost = (await call(`${b.url}/rooms/${conference.guid}/messages`, "POST", { body: "after frank left" }, alice.token)).body;
    expect((await aliceRoomInbox.next(1)).map((m) => m.id)).toEqual([roomPost.id]);
    await new Promise((r) => setTimeout(r, 500));
    expect(frankRoomInbox.items).toHaveLength(0);

    // Live delivery through Redis works again, once, everywhere.
    const after = (await call(`${c.url}/chat/rooms/${quiet.id}/messages`, "POST", { body: "after the outage" }, alice.token)).body;
    for (const inbox of Object.values(channelInbox)) expect((await inbox.next(2)).map((m) => m.id)).toEqual([posted.body.id, after.id]);
    expect((await inboxOnD.next(1)).map((m) => m.id)).toEqual([after.id]);
    // Signaling reaches Bob's sockets on all four processes again (D's adapter subscribed late).
    const offer = { guid: conference.guid, to: "outage_bob", data: { type: "offer", sdp: "v=0" } };
    await eventually("signals to reach every process", async () => (await emitWithAck(aliceOnA, "room:signal", offer)).delivered === 4, 5000);
    expect((await call(`${b.url}/users/me`, "GET", undefined, carol.token)).status).toBe(401);
    const slowest = Math.max(...Object.values(answers));
    process.stdout.write(`redis killed: ${asked} answers, slowest ${slowest} ms (${JSON.stringify(answers)}); caught up ${caughtUp} ms after Redis returned\n`);

    // A Redis that stops answering but keeps its connections open (SIGSTOP): the same, once
    // the processes see it (a PING every second, or a command that times out).
    for (const key of Object.keys(answers)) delete answers[key];
    asked = 0;
    redis!.kill("SIGSTOP");
    const stopped = Date.now();
    expect((await timed("POST /auth/login", () => call(`${b.url}/auth/login`, "POST", { username: "outage_alice", password: "outage password" }))).status).toBe(200);
    expect((await timed("POST message (busy channel)", () => call(`${a.url}/chat/rooms/${busy.id}/messages`, "POST", { body: "busy" }, alice.token))).status).toBe(201);
    for (const { url } of [a, b]) await eventually("/ready to say degraded", async () => (await timed("GET /ready", () => call(`${url}/ready`, "GET"))).body?.status === "degraded", 5000);
    const stalledPost = await timed("POST channel message", () => call(`${a.url}/chat/rooms/${quiet.id}/messages`, "POST", { body: "lone message, Redis stopped" }, alice.token));
    expect(stalledPost.status).toBe(201);
    expect((await timed("POST /auth/logout", () => call(`${a.url}/auth/logout`, "POST", undefined, erin.token))).status).toBe(204);
    while (Date.now() - stopped < OUTAGE_MS) {
      expect((await timed("POST /auth/login (again)", () => call(`${b.url}/auth/login`, "POST", { username: "outage_bob", password: "outage password" }))).status).toBe(200);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(Math.max(...Object.values(answers))).toBeLessThan(ANSWER_BOUND_MS);
    expect((await channelInbox.a.next(3, 5000))[2].id).toBe(stalledPost.body.id);
    expect(channelInbox.b.items).toHaveLength(2);
    expect(erinOnB.connected).toBe(true);
    redis!.kill("SIGCONT");
    const resumed = Date.now();
    expect((await channelInbox.b.next(3, 15_000))[2].id).toBe(stalledPost.body.id);
    await eventually("Erin's socket on B to end", () => erinOnB.disconnected);
    const stallCaughtUp = Date.now() - resumed;
    for (const { url } of [a, b, c]) await eventually("/ready to say ok", async () => (await call(`${url}/ready`, "GET")).body?.status === "ok");
    await new Promise((r) => setTimeout(r, 500));
    for (const inbox of Object.values(channelInbox)) expect(inbox.items.map((m) => m.id)).toEqual([posted.body.id, after.id, stalledPost.body.id]);
    process.stdout.write(`redis stopped: ${asked} answers, slowest ${Math.max(...Object.values(answers))} ms (${JSON.stringify(answers)}); caught up ${stallCaughtUp} ms after Redis resumed\n`);
    for (const { server } of [a, b, c, d]) expect(server.output()).not.toMatch(/unhandled|"level":60/i);
    expect(await Promise.all([a, b, c, d].map(({ server }) => server.stop()))).toEqual([0, 0, 0, 0]);
  });
});

if (!enabled) it("needs the postgres project and redis-server on PATH (skipped otherwise)", () => undefined);
