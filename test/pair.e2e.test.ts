import type { Socket } from "socket.io-client";
import { collect, connectSocket, emitWithAck } from "./support/realtime";
import { startTestServer, type TestServer } from "./support/test-server";

let t: TestServer;
const sockets: Socket[] = [];
beforeAll(async () => { t = await startTestServer(); });
afterEach(() => { for (const s of sockets.splice(0)) s.close(); });
afterAll(async () => { await t.close(); });

type Id = { publicId: string; privateId: string; username: string };
async function identity(): Promise<Id> {
  const res = await t.http.post("/pair/users");
  expect(res.status).toBe(201);
  expect(res.body.publicId).toMatch(/^\d{3}-\d{3}$/);
  return res.body as Id;
}
const h = (i: Id) => ({ "X-Private-Id": i.privateId });

test("pair rooms: connect, messages, incoming call, signaling, calls, delete", async () => {
  const a = await identity(), b = await identity(), c = await identity();
  const sb = await connectSocket(t.url, { privateId: b.privateId });
  const sa = await connectSocket(t.url, { privateId: a.privateId });
  sockets.push(sa, sb);
  const incoming = collect(sb, "pair:incoming_call");
  const r1 = await t.http.post(`/pair/users/${b.publicId}/connect`).set(h(a));
  expect(r1.status).toBe(200);
  const r2 = await t.http.post(`/pair/users/${a.publicId}/connect`).set(h(b));
  expect(r2.body.roomId).toBe(r1.body.roomId);
  expect(JSON.stringify(r1.body)).not.toContain(a.privateId);
  const roomId = r1.body.roomId as string;
  expect((await incoming.next(1))[0]).toEqual({ roomId, from: { publicId: a.publicId, username: a.username } });

  const ghost = await t.http.post(`/pair/users/999-99${Math.floor(Math.random() * 10)}/connect`).set(h(a));
  expect(ghost.status).toBe(200);
  expect(ghost.body.roomId).toMatch(/^[A-Za-z0-9_-]{43}$/);

  const got = collect(sb, "pair:message");
  const post = await t.http.post(`/pair/rooms/${roomId}/messages`).set(h(a)).send({ body: "hi" });
  expect(post.status).toBe(201);
  expect((await got.next(1))[0].body).toBe("hi");
  expect((await t.http.get(`/pair/rooms/${roomId}/messages`).set(h(b))).body.items[0].body).toBe("hi");
  expect((await t.http.get(`/pair/rooms/${roomId}/messages`).set(h(c))).status).toBe(404);
  expect((await t.http.post(`/pair/rooms/${"A".repeat(43)}/messages`).set(h(a)).send({ body: "x" })).status).toBe(404);
  expect((await t.http.get(`/pair/calls`).set({ "X-Private-Id": "wrong" })).status).toBe(401);

  const signals = collect(sb, "pair:signal");
  const ack = await emitWithAck(sa, "pair:signal", { roomId, data: { sdp: "offer" } });
  expect(ack).toMatchObject({ ok: true, delivered: 1 });
  expect((await signals.next(1))[0]).toEqual({ roomId, from: { publicId: a.publicId, username: a.username }, data: { sdp: "offer" } });
  expect((await emitWithAck(sa, "pair:signal", { roomId, data: { x: "y".repeat(70_000) } })).error.status).toBe(413);
  expect((await emitWithAck(sa, "pair:signal", { roomId: "B".repeat(43), data: {} })).error.status).toBe(404);

  const calls = await t.http.get("/pair/calls").set(h(a));
  expect(calls.body.items[0]).toMatchObject({ roomId, with: { publicId: b.publicId, username: b.username } });

  const ended = new Promise((resolve) => sb.once("disconnect", resolve));
  expect((await t.http.delete("/pair/users/me").set(h(b))).status).toBe(204);
  await ended;
  expect((await t.http.get("/pair/calls").set(h(b))).status).toBe(401);
  expect((await t.http.get(`/pair/rooms/${roomId}/messages`).set(h(a))).status).toBe(404);
});

test("creating identities is rate limited", async () => {
  const limited = await startTestServer({ RATE_LIMIT_AUTH_PER_MINUTE: "3" });
  try {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await limited.http.post("/pair/users")).status);
    expect(statuses).toContain(429);
  } finally {
    await limited.close();
  }
});

test("privateId in the body; calls paginated; different pairs, different roomIds; new and old rooms followed", async () => {
  const a = await identity(), b = await identity(), c = await identity();
  const sa = await connectSocket(t.url, { privateId: a.privateId });
  sockets.push(sa);
  const got = collect(sa, "pair:message");
  // In the body instead of the header.
  const ab = await t.http.post(`/pair/users/${b.publicId}/connect`).send({ privateId: a.privateId });
  expect(ab.status).toBe(200);
  const ac = await t.http.post(`/pair/users/${a.publicId}/connect`).set(h(c));
  expect(ac.body.roomId).not.toBe(ab.body.roomId);
  const bc = await t.http.post(`/pair/users/${c.publicId}/connect`).set(h(b));
  expect(new Set([ab.body.roomId, ac.body.roomId, bc.body.roomId]).size).toBe(3);
  expect((await t.http.get("/pair/calls").set(h(a)).send({ privateId: "ignored: the header wins" })).status).toBe(200);
  expect((await t.http.get("/pair/calls").send({ privateId: a.privateId })).body.items).toHaveLength(2);
  expect((await t.http.post(`/pair/users/${b.publicId}/connect`).send({ privateId: "not one" })).status).toBe(401);

  // Rooms opened while a's socket is connected reach it, in order, with their room_id.
  expect((await t.http.post(`/pair/rooms/${ab.body.roomId}/messages`).send({ body: "one", privateId: b.privateId })).status).toBe(201);
  expect((await t.http.post(`/pair/rooms/${ac.body.roomId}/messages`).set(h(c)).send({ body: "two" })).status).toBe(201);
  const items = await got.next(2);
  expect(items.map((m) => [m.body, m.room_id])).toEqual([["one", ab.body.roomId], ["two", ac.body.roomId]]);
  // A socket connecting later follows the rooms that exist.
  const sb = await connectSocket(t.url, { privateId: b.privateId });
  sockets.push(sb);
  const gotB = collect(sb, "pair:message");
  await t.http.post(`/pair/rooms/${bc.body.roomId}/messages`).set(h(c)).send({ body: "three" });
  expect((await gotB.next(1))[0]).toMatchObject({ body: "three", room_id: bc.body.roomId });

  // Paging: newest first, one at a time, no repeats.
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { body: { items: { roomId: string }[]; next_cursor: string | null } } =
      await t.http.get("/pair/calls").query({ limit: 1, ...(cursor ? { cursor } : {}) }).set(h(a));
    seen.push(...page.body.items.map((i) => i.roomId));
    cursor = page.body.next_cursor;
  } while (cursor);
  expect(seen).toEqual([ac.body.roomId, ab.body.roomId]);
  expect((await t.http.get("/pair/calls").query({ cursor: "nonsense" }).set(h(a))).status).toBe(400);
  expect((await t.http.get("/pair/calls").query({ limit: 201 }).set(h(a))).status).toBe(400);

  // Forged roomId: well-formed but no pair's.
  expect((await t.http.get(`/pair/rooms/${ab.body.roomId.slice(0, -1)}${ab.body.roomId.endsWith("A") ? "B" : "A"}/messages`).set(h(a))).status).toBe(404);
  expect((await t.http.get(`/rtc/ice-servers`).set(h(a))).status).toBe(200);

  // A deleted identity's publicId stays issued, so it is never given again.
  expect((await t.http.delete("/pair/users/me").send({ privateId: c.privateId })).status).toBe(204);
  const kept = await t.database.dataSource.query(`SELECT count(*)::int AS n FROM pair_public_ids WHERE public_id = $1`, [c.publicId]);
  expect(kept[0].n).toBe(1);
  expect((await t.http.get("/pair/calls").set(h(a))).body.items.map((i: { roomId: string }) => i.roomId)).toEqual([ab.body.roomId]);
});

test("503 when the public id space runs low", async () => {
  const low = await startTestServer();
  try {
    await low.database.dataSource.query(
      `INSERT INTO pair_public_ids (public_id) SELECT lpad((n / 1000)::text, 3, '0') || '-' || lpad((n % 1000)::text, 3, '0') FROM generate_series(0, 899998) AS n`,
    );
    // 100,001 left: still issued, never one of the taken ones.
    const last = await low.http.post("/pair/users");
    expect(last.status).toBe(201);
    expect(Number(last.body.publicId.replace("-", ""))).toBeGreaterThanOrEqual(899_999);
    await low.http.post("/pair/users").expect(201);
    const refused = await low.http.post("/pair/users");
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBeDefined();
  } finally {
    await low.close();
  }
});
