import { createHmac } from "node:crypto";
import type { Socket } from "socket.io-client";
import { collect, connectSocket, emitWithAck } from "./support/realtime";
import { registerUser, startTestServer, uniqueName, type TestServer } from "./support/test-server";

let t: TestServer;
type U = { username: string; token: string };
let alice: U, bob: U, carol: U;
const sockets: Socket[] = [];
beforeAll(async () => {
  t = await startTestServer({ TURN_SECRET: "s3cret-s3cret-s3cret", ICE_SERVERS: "stun:stun.example.org,turn:turn.example.org" });
  [alice, bob, carol] = await Promise.all([registerUser(t, uniqueName("alice")), registerUser(t, uniqueName("bob")), registerUser(t, uniqueName("carol"))]);
}, 60_000);
afterEach(() => { for (const s of sockets.splice(0)) s.close(); });
afterAll(async () => { await t.close(); });

const auth = (u: U) => ({ Authorization: `Bearer ${u.token}` });
async function create(capacity?: number, host = alice) {
  const res = await t.http.post("/rooms").set(auth(host)).send({ name: "Standup", ...(capacity ? { capacity } : {}) });
  expect(res.status).toBe(201);
  return res.body;
}
async function socketFor(u: U) { const s = await connectSocket(t.url, { token: u.token }); sockets.push(s); return s; }

it("creates, lists, gets, joins, leaves and closes rooms", async () => {
  const room = await create();
  expect(room).toEqual({ guid: expect.any(String), name: "Standup", capacity: 5, host: alice.username, participants: [alice.username], created_at: expect.any(String) });
  expect((await t.http.post("/rooms").set(auth(alice)).send({ name: "" })).status).toBe(400);
  expect((await t.http.post("/rooms").set(auth(alice)).send({ name: "x", capacity: 1001 })).status).toBe(400);
  expect((await t.http.post("/rooms").send({ name: "x" })).status).toBe(401);
  expect((await t.http.get(`/rooms/${room.guid}`)).body).toEqual(room);
  expect((await t.http.get("/rooms/00000000-0000-4000-8000-000000000000")).status).toBe(404);
  expect((await t.http.get("/rooms/nope")).status).toBe(404);
  const joined = await t.http.post(`/rooms/${room.guid}/join`).set(auth(bob));
  expect(joined.body.participants).toEqual([alice.username, bob.username]);
  expect((await t.http.post(`/rooms/${room.guid}/join`).set(auth(bob))).body.participants).toHaveLength(2);
  const mine = await t.http.get(`/rooms?member=${bob.username}`);
  expect(mine.body.items.map((r: { guid: string }) => r.guid)).toContain(room.guid);
  expect((await t.http.get("/rooms")).body.items.length).toBeGreaterThan(0);
  expect((await t.http.post(`/rooms/${room.guid}/leave`).set(auth(carol))).status).toBe(409);
  const left = await t.http.post(`/rooms/${room.guid}/leave`).set(auth(alice));
  expect(left.status).toBe(200);
  expect(left.body).toMatchObject({ host: bob.username, participants: [bob.username] });
  expect((await t.http.post(`/rooms/${room.guid}/leave`).set(auth(bob))).status).toBe(204);
  expect((await t.http.get(`/rooms/${room.guid}`)).status).toBe(404);
});

it("host hand-over, removal and closing are the host's", async () => {
  const room = await create();
  await t.http.post(`/rooms/${room.guid}/join`).set(auth(bob));
  expect((await t.http.put(`/rooms/${room.guid}/host`).set(auth(bob)).send({ username: bob.username })).status).toBe(403);
  expect((await t.http.put(`/rooms/${room.guid}/host`).set(auth(alice)).send({ username: carol.username })).status).toBe(409);
  const handed = await t.http.put(`/rooms/${room.guid}/host`).set(auth(alice)).send({ username: bob.username });
  expect(handed.body.host).toBe(bob.username);
  expect((await t.http.delete(`/rooms/${room.guid}/participants/${bob.username}`).set(auth(bob))).status).toBe(409);
  expect((await t.http.delete(`/rooms/${room.guid}/participants/${carol.username}`).set(auth(bob))).status).toBe(404);
  expect((await t.http.delete(`/rooms/${room.guid}/participants/${bob.username}`).set(auth(alice))).status).toBe(403);
  const removed = await t.http.delete(`/rooms/${room.guid}/participants/${alice.username}`).set(auth(bob));
  expect(removed.body.participants).toEqual([bob.username]);
  expect((await t.http.delete(`/rooms/${room.guid}`).set(auth(alice))).status).toBe(403);
  expect((await t.http.delete(`/rooms/${room.guid}`).set(auth(bob))).status).toBe(204);
  expect((await t.http.get(`/rooms/${room.guid}`)).status).toBe(404);
});

async function users(n: number, prefix: string) {
  const list: U[] = [];
  for (let i = 0; i < n; i++) list.push(await registerUser(t, uniqueName(prefix)));
  return list;
}

// 50 users, the host among them: the host's join changes nothing and answers 200, so
// 1 + 9 answers of 200 and 40 of 409 leave exactly capacity (10) participants.
it("holds the capacity under 50 simultaneous joins from 50 users (the host one of them)", async () => {
  const joiners = await users(49, "j");
  const room = await create(10);
  const results = await Promise.all([alice, ...joiners].map((u) => t.http.post(`/rooms/${room.guid}/join`).set(auth(u))));
  expect(results.filter((r) => r.status === 200)).toHaveLength(10);
  expect(results.filter((r) => r.status === 409)).toHaveLength(40);
  for (const r of results) if (r.status === 200) expect(r.body.participants.length).toBeLessThanOrEqual(10);
  const after = (await t.http.get(`/rooms/${room.guid}`)).body;
  expect(after.participants).toHaveLength(10);
  expect(after.participants[0]).toBe(alice.username);
}, 120_000);

it("holds the capacity with joins and leaves interleaved", async () => {
  const [inside, outside] = [await users(9, "in"), await users(30, "out")];
  const room = await create(10);
  for (const u of inside) expect((await t.http.post(`/rooms/${room.guid}/join`).set(auth(u))).status).toBe(200);
  const requests = [...inside.map((u) => ["leave", u] as const), ...outside.map((u) => ["join", u] as const)];
  requests.sort(() => Math.random() - 0.5);
  const results = await Promise.all(requests.map(([what, u]) => t.http.post(`/rooms/${room.guid}/${what}`).set(auth(u)).then((r) => ({ what, r }))));
  const leaves = results.filter((x) => x.what === "leave");
  const joins = results.filter((x) => x.what === "join");
  expect(leaves.every((x) => x.r.status === 200)).toBe(true);
  const joined = joins.filter((x) => x.r.status === 200).length;
  expect(joins.filter((x) => x.r.status === 409)).toHaveLength(30 - joined);
  for (const { r } of results) if (r.status === 200) expect(r.body.participants.length).toBeLessThanOrEqual(10);
  const after = (await t.http.get(`/rooms/${room.guid}`)).body;
  // The host stays; every leave went through; only seats free at the time were taken.
  expect(after.participants).toHaveLength(1 + joined);
  expect(joined).toBeGreaterThanOrEqual(0);
  expect(joined).toBeLessThanOrEqual(9);
}, 120_000);

it("pages GET /rooms and ?member= with limit and cursor", async () => {
  const member = await registerUser(t, uniqueName("pager"));
  const made = [];
  for (let i = 0; i < 5; i++) {
    const room = await create(5);
    await t.http.post(`/rooms/${room.guid}/join`).set(auth(member));
    made.push(room.guid);
  }
  const walk = async (path: string) => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await t.http.get(path).query({ limit: 2, ...(cursor ? { cursor } : {}) });
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.items.map((r: { guid: string }) => r.guid));
      cursor = res.body.next_cursor;
      pages++;
    } while (cursor);
    return { seen, pages };
  };
  const mine = await walk(`/rooms?member=${member.username}`);
  expect(mine.seen).toEqual(made); // in join order
  expect(mine.pages).toBe(3);
  const all = await walk("/rooms");
  expect(new Set(all.seen).size).toBe(all.seen.length);
  for (const guid of made) expect(all.seen).toContain(guid);
  expect((await t.http.get("/rooms").query({ limit: 0 })).status).toBe(400);
  expect((await t.http.get("/rooms").query({ limit: 201 })).status).toBe(400);
  expect((await t.http.get("/rooms").query({ cursor: "nope" })).status).toBe(400);
  expect((await t.http.get(`/rooms?member=${uniqueName("ghost")}`)).status).toBe(404);
  expect((await t.http.get(`/rooms?member=${member.username}`).query({ limit: 200 })).body).toEqual({ items: expect.any(Array), next_cursor: null });
}, 60_000);

it("a participant who leaves, is removed, or whose room closes gets one last room:updated, then nothing, on every socket", async () => {
  const quiet = () => new Promise((r) => setTimeout(r, 400));
  for (const how of ["leave", "remove", "close"] as const) {
    const room = await create();
    await t.http.post(`/rooms/${room.guid}/join`).set(auth(bob));
    const bobs = [await socketFor(bob), await socketFor(bob)];
    const updates = bobs.map((s) => collect(s, "room:updated"));
    const messages = bobs.map((s) => collect(s, "room:message"));
    for (const s of bobs) expect((await emitWithAck(s, "room:subscribe", { guid: room.guid })).ok).toBe(true);
    await t.http.post(`/rooms/${room.guid}/messages`).set(auth(alice)).send({ body: "before" });
    for (const m of messages) expect((await m.next(1))[0].body).toBe("before");
    if (how === "leave") expect((await t.http.post(`/rooms/${room.guid}/leave`).set(auth(bob))).status).toBe(200);
    if (how === "remove") expect((await t.http.delete(`/rooms/${room.guid}/participants/${bob.username}`).set(auth(alice))).status).toBe(200);
    if (how === "close") expect((await t.http.delete(`/rooms/${room.guid}`).set(auth(alice))).status).toBe(204);
    if (how !== "close") {
      for (const u of updates) expect((await u.next(1))[0].participants).toEqual([alice.username]);
      // At once: the very next message and membership change reach none of bob's sockets.
      await t.http.post(`/rooms/${room.guid}/messages`).set(auth(alice)).send({ body: "after" });
      await t.http.post(`/rooms/${room.guid}/join`).set(auth(carol));
      await quiet();
      for (const u of updates) expect(u.items).toHaveLength(1);
      for (const m of messages) expect(m.items.map((x: { body: string }) => x.body)).toEqual(["before"]);
      expect((await emitWithAck(bobs[0], "room:subscribe", { guid: room.guid })).error.status).toBe(403);
      await t.http.delete(`/rooms/${room.guid}`).set(auth(alice));
    } else {
      await quiet();
      for (const u of updates) expect(u.items).toHaveLength(0);
    }
    for (const s of bobs.splice(0)) s.close();
  }
}, 60_000);

it("room chat is for participants", async () => {
  const room = await create();
  expect((await t.http.post(`/rooms/${room.guid}/messages`).set(auth(bob)).send({ body: "hi" })).status).toBe(403);
  expect((await t.http.get(`/rooms/${room.guid}/messages`).set(auth(bob))).status).toBe(403);
  expect((await t.http.get(`/rooms/00000000-0000-4000-8000-000000000000/messages`).set(auth(bob))).status).toBe(404);
  const posted = await t.http.post(`/rooms/${room.guid}/messages`).set(auth(alice)).send({ body: "hi" });
  expect(posted.status).toBe(201);
  expect(posted.body).toMatchObject({ room_guid: room.guid, body: "hi", sender: alice.username });
  expect((await t.http.get(`/rooms/${room.guid}/messages`).set(auth(alice))).body.items[0].id).toBe(posted.body.id);
});

it("room:subscribe, room:updated, room:message and signaling", async () => {
  const room = await create();
  await t.http.post(`/rooms/${room.guid}/join`).set(auth(bob));
  const [a, b, c] = [await socketFor(alice), await socketFor(bob), await socketFor(carol)];
  expect((await emitWithAck(c, "room:subscribe", { guid: room.guid })).error.status).toBe(403);
  expect((await emitWithAck(c, "room:subscribe", { guid: "00000000-0000-4000-8000-000000000000" })).error.status).toBe(404);
  const updates = collect(b, "room:updated");
  const messages = collect(b, "room:message");
  const sub = await emitWithAck(b, "room:subscribe", { guid: room.guid });
  expect(sub).toMatchObject({ ok: true, room: { guid: room.guid } });
  await t.http.post(`/rooms/${room.guid}/messages`).set(auth(alice)).send({ body: "hello" });
  expect((await messages.next(1))[0].body).toBe("hello");
  await t.http.post(`/rooms/${room.guid}/join`).set(auth(carol));
  expect((await updates.next(1))[0].participants).toContain(carol.username);
  const signals = collect(b, "room:signal");
  const offer = await emitWithAck(a, "room:signal", { guid: room.guid, to: bob.username, data: { type: "offer", sdp: "x" } });
  expect(offer).toEqual({ ok: true, delivered: 1 });
  expect((await signals.next(1))[0]).toEqual({ guid: room.guid, from: alice.username, data: { type: "offer", sdp: "x" } });
  const answers = collect(a, "room:signal");
  await emitWithAck(b, "room:signal", { guid: room.guid, to: alice.username, data: { type: "answer" } });
  expect((await answers.next(1))[0].from).toBe(bob.username);
  await t.http.delete(`/rooms/${room.guid}/participants/${carol.username}`).set(auth(alice));
  const outsider = await emitWithAck(c, "room:signal", { guid: room.guid, to: bob.username, data: {} });
  expect(outsider.error.status).toBe(403);
  expect((await emitWithAck(a, "room:signal", { guid: room.guid, to: carol.username, data: {} })).error.status).toBe(404);
  expect((await emitWithAck(a, "room:signal", { guid: room.guid, to: bob.username, data: { x: "y".repeat(70_000) } })).error.status).toBe(413);
  await t.http.post(`/rooms/${room.guid}/leave`).set(auth(bob));
  await updates.next(3);
  expect(updates.items[2].participants).not.toContain(bob.username);
  await t.http.post(`/rooms/${room.guid}/join`).set(auth(carol));
  await new Promise((r) => setTimeout(r, 300));
  expect(updates.items).toHaveLength(3);
  expect(await emitWithAck(b, "room:unsubscribe", { guid: room.guid })).toEqual({ ok: true });
}, 60_000);

it("serves ICE servers with TURN credentials in the coturn REST-API scheme, to accounts and pair identities", async () => {
  const before = Math.floor(Date.now() / 1000);
  const res = await t.http.get("/rtc/ice-servers").set(auth(alice));
  expect(res.status).toBe(200);
  const [stun, turn] = res.body.ice_servers;
  expect(stun).toEqual({ urls: "stun:stun.example.org" });
  const [expiry, name] = turn.username.split(":");
  expect(name).toBe(alice.username);
  expect(Number(expiry)).toBeGreaterThanOrEqual(before + t.config.turnTtlSeconds);
  expect(Number(expiry)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + t.config.turnTtlSeconds);
  expect(turn.credential).toBe(createHmac("sha1", "s3cret-s3cret-s3cret").update(turn.username).digest("base64"));
  expect(res.body.ttl_seconds).toBe(t.config.turnTtlSeconds);
  expect((await t.http.get("/rtc/ice-servers").set("Authorization", `Basic ${Buffer.from(`${alice.username}:correct horse`).toString("base64")}`)).status).toBe(200);
  expect((await t.http.get("/rtc/ice-servers")).status).toBe(401);

  const identity = (await t.http.post("/pair/users")).body;
  const paired = await t.http.get("/rtc/ice-servers").set("X-Private-Id", identity.privateId);
  expect(paired.status).toBe(200);
  const pairTurn = paired.body.ice_servers[1];
  expect(pairTurn.username).toMatch(new RegExp(`^[0-9]+:${identity.publicId}$`));
  expect(pairTurn.credential).toBe(createHmac("sha1", "s3cret-s3cret-s3cret").update(pairTurn.username).digest("base64"));
  expect((await t.http.get("/rtc/ice-servers").set("X-Private-Id", "not-a-private-id")).status).toBe(401);
});

it("serves ICE_SERVERS as they are without TURN_SECRET", async () => {
  const plain = await startTestServer({ ICE_SERVERS: "stun:stun.example.org,turn:turn.example.org" });
  try {
    const u = await registerUser(plain, uniqueName("plain"));
    const res = await plain.http.get("/rtc/ice-servers").set(auth(u));
    expect(res.body.ice_servers).toEqual([{ urls: "stun:stun.example.org" }, { urls: "turn:turn.example.org" }]);
  } finally {
    await plain.close();
  }
}, 60_000);
