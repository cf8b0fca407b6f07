import { collect, connectSocket, emitWithAck } from "./support/realtime";
import { freshDatabase, registerUser, startTestServer, testDatabase, type TestServer } from "./support/test-server";

let t: TestServer;
beforeAll(async () => { t = await startTestServer(); });
afterAll(() => t.close());

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const key = () => `key-${Math.random().toString(36).slice(2)}`;

async function channelOf(token: string): Promise<string> {
  return (await t.http.post("/chat/rooms").set(bearer(token)).send({ name: `idem-${key()}` })).body.id;
}

it("answers a retried channel post with the first message, posting it once", async () => {
  const user = await registerUser(t);
  const channel = await channelOf(user.token);
  const watcher = await connectSocket(t.url, { token: user.token });
  await emitWithAck(watcher, "chat:subscribe", { channel_id: channel });
  const live = collect(watcher, "chat:message");
  const k = key();

  const first = await t.http.post(`/chat/rooms/${channel}/messages`).set(bearer(user.token)).set("Idempotency-Key", k).send({ body: "once" });
  const second = await t.http.post(`/chat/rooms/${channel}/messages`).set(bearer(user.token)).set("Idempotency-Key", k).send({ body: "once" });
  expect(first.status).toBe(201);
  expect(first.headers["idempotent-replayed"]).toBeUndefined();
  expect(second.status).toBe(201);
  expect(second.headers["idempotent-replayed"]).toBe("true");
  expect(second.body).toEqual(first.body);

  const other = await t.http.post(`/chat/rooms/${channel}/messages`).set(bearer(user.token)).set("Idempotency-Key", k).send({ body: "another body" });
  expect(other.status).toBe(409);
  expect(other.headers["content-type"]).toMatch(/application\/problem\+json/);

  const history = await t.http.get(`/chat/rooms/${channel}/messages`).set(bearer(user.token));
  expect(history.body.items.map((m: { id: string }) => m.id)).toEqual([first.body.id]);
  await live.next(1);
  await new Promise((r) => setTimeout(r, 200));
  expect(live.items.map((m: { id: string }) => m.id)).toEqual([first.body.id]);
  watcher.close();
});

it("scopes a key to its principal, and refuses a key that is not 1–64 characters", async () => {
  const a = await registerUser(t);
  const b = await registerUser(t);
  const channel = await channelOf(a.token);
  const k = key();
  const byA = await t.http.post(`/chat/rooms/${channel}/messages`).set(bearer(a.token)).set("Idempotency-Key", k).send({ body: "same" });
  const byB = await t.http.post(`/chat/rooms/${channel}/messages`).set(bearer(b.token)).set("Idempotency-Key", k).send({ body: "same" });
  expect(byB.status).toBe(201);
  expect(byB.headers["idempotent-replayed"]).toBeUndefined();
  expect(byB.body.id).not.toBe(byA.body.id);

  const long = await t.http.post(`/chat/rooms/${channel}/messages`).set(bearer(a.token)).set("Idempotency-Key", "x".repeat(65)).send({ body: "no" });
  expect(long.status).toBe(400);
  expect(long.body.errors[0].field).toBe("header.Idempotency-Key");
  const empty = await t.http.post(`/chat/rooms/${channel}/messages`).set(bearer(a.token)).set("Idempotency-Key", "").send({ body: "no" });
  expect(empty.status).toBe(400);
});

it("posts once when the same key races itself (the unique index decides)", async () => {
  const user = await registerUser(t);
  const channel = await channelOf(user.token);
  const k = key();
  const answers = await Promise.all(
    Array.from({ length: 12 }, () => t.http.post(`/chat/rooms/${channel}/messages`).set(bearer(user.token)).set("Idempotency-Key", k).send({ body: "race" })),
  );
  expect(answers.map((a) => a.status)).toEqual(Array(12).fill(201));
  expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
  expect(answers.filter((a) => a.headers["idempotent-replayed"] === "true")).toHaveLength(11);
  const history = await t.http.get(`/chat/rooms/${channel}/messages`).set(bearer(user.token));
  expect(history.body.items).toHaveLength(1);
});

it("holds for direct messages, room chat and pair rooms, and across REST and Socket.IO", async () => {
  const a = await registerUser(t);
  const b = await registerUser(t);

  const k1 = key();
  const dm1 = await t.http.post(`/chat/users/${b.username}/messages`).set(bearer(a.token)).set("Idempotency-Key", k1).send({ body: "dm" });
  const socket = await connectSocket(t.url, { token: a.token });
  const dm2 = await emitWithAck(socket, "dm:send", { to: b.username, body: "dm", idempotency_key: k1 });
  expect(dm2).toEqual({ ok: true, message: dm1.body });
  // The same key for another conversation is another post: 409 over Socket.IO too.
  const elsewhere = await emitWithAck(socket, "dm:send", { to: a.username, body: "dm", idempotency_key: k1 });
  expect(elsewhere).toEqual({ ok: false, error: expect.objectContaining({ status: 409 }) });
  const bad = await emitWithAck(socket, "dm:send", { to: b.username, body: "dm", idempotency_key: "" });
  expect(bad.error.status).toBe(400);

  const channel = await channelOf(a.token);
  const k2 = key();
  const s1 = await emitWithAck(socket, "chat:send", { channel_id: channel, body: "sock", idempotency_key: k2 });
  const s2 = await emitWithAck(socket, "chat:send", { channel_id: channel, body: "sock", idempotency_key: k2 });
  expect(s1.ok).toBe(true);
  expect(s2.message).toEqual(s1.message);
  socket.close();

  const room = (await t.http.post("/rooms").set(bearer(a.token)).send({ name: "idem" })).body;
  const k3 = key();
  const r1 = await t.http.post(`/rooms/${room.guid}/messages`).set(bearer(a.token)).set("Idempotency-Key", k3).send({ body: "room" });
  const r2 = await t.http.post(`/rooms/${room.guid}/messages`).set(bearer(a.token)).set("Idempotency-Key", k3).send({ body: "room" });
  expect(r1.status).toBe(201);
  expect(r2.headers["idempotent-replayed"]).toBe("true");
  expect(r2.body.id).toBe(r1.body.id);

  const p = (await t.http.post("/pair/users")).body;
  const q = (await t.http.post("/pair/users")).body;
  const { roomId } = (await t.http.post(`/pair/users/${q.publicId}/connect`).set({ "X-Private-Id": p.privateId })).body;
  const k4 = key();
  const p1 = await t.http.post(`/pair/rooms/${roomId}/messages`).set({ "X-Private-Id": p.privateId }).set("Idempotency-Key", k4).send({ body: "pair" });
  const p2 = await t.http.post(`/pair/rooms/${roomId}/messages`).set({ "X-Private-Id": p.privateId }).set("Idempotency-Key", k4).send({ body: "pair" });
  expect(p2.status).toBe(201);
  expect(p2.headers["idempotent-replayed"]).toBe("true");
  expect(p2.body).toEqual(p1.body);
  const other = await t.http.post(`/pair/rooms/${roomId}/messages`).set({ "X-Private-Id": q.privateId }).set("Idempotency-Key", k4).send({ body: "pair" });
  expect(other.headers["idempotent-replayed"]).toBeUndefined();
  expect((await t.http.get(`/pair/rooms/${roomId}/messages`).set({ "X-Private-Id": p.privateId })).body.items).toHaveLength(2);
});

// Two servers on one database stand for two processes, and for a restart: the key is in the database.
(testDatabase === "postgres" ? it : it.skip)("holds across processes and restarts (postgres)", async () => {
  const db = await freshDatabase();
  const env = { JWT_SECRET: "s".repeat(48) };
  const one = await startTestServer(env, db);
  const two = await startTestServer(env, db);
  try {
    const user = await registerUser(one);
    const channel = (await one.http.post("/chat/rooms").set(bearer(user.token)).send({ name: "shared" })).body.id;
    const k = key();
    const first = await one.http.post(`/chat/rooms/${channel}/messages`).set(bearer(user.token)).set("Idempotency-Key", k).send({ body: "x" });
    expect(first.status).toBe(201);
    const again = await two.http.post(`/chat/rooms/${channel}/messages`).set(bearer(user.token)).set("Idempotency-Key", k).send({ body: "x" });
    expect(again.headers["idempotent-replayed"]).toBe("true");
    expect(again.body.id).toBe(first.body.id);
    await one.close();
    const three = await startTestServer(env, db);
    const after = await three.http.post(`/chat/rooms/${channel}/messages`).set(bearer(user.token)).set("Idempotency-Key", k).send({ body: "x" });
    expect(after.body.id).toBe(first.body.id);
    await three.close();
  } finally {
    await two.close();
    await db.drop();
  }
});
