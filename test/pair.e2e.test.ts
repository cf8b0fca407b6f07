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
