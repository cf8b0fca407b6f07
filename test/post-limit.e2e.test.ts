import { connectSocket, emitWithAck } from "./support/realtime";
import { registerUser, startTestServer, type TestServer } from "./support/test-server";

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ RATE_LIMIT_POSTS_PER_MINUTE: "3" });
});
afterAll(() => t.close());

it("counts every message a principal posts, over REST and Socket.IO together", async () => {
  const user = await registerUser(t);
  const other = await registerUser(t);
  const auth = { Authorization: `Bearer ${user.token}` };
  const channel = (await t.http.post("/chat/rooms").set(auth).send({ name: "limited" })).body;
  expect((await t.http.post(`/chat/rooms/${channel.id}/messages`).set(auth).send({ body: "1" })).status).toBe(201);
  expect((await t.http.post(`/chat/users/${other.username}/messages`).set(auth).send({ body: "2" })).status).toBe(201);
  const socket = await connectSocket(t.url, { token: user.token });
  expect((await emitWithAck(socket, "chat:send", { channel_id: channel.id, body: "3" })).ok).toBe(true);

  const refused = await emitWithAck(socket, "dm:send", { to: other.username, body: "4" });
  expect(refused).toEqual({ ok: false, error: expect.objectContaining({ status: 429, retry_after: expect.any(Number) }) });
  const res = await t.http.post(`/chat/rooms/${channel.id}/messages`).set(auth).send({ body: "5" });
  expect(res.status).toBe(429);
  expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
  expect(res.headers["content-type"]).toMatch(/application\/problem\+json/);
  // Nothing over the limit was stored; another principal still posts.
  expect((await t.http.get(`/chat/rooms/${channel.id}/messages`).set(auth)).body.items.map((m: { body: string }) => m.body)).toEqual(["3", "1"]);
  expect((await t.http.post(`/chat/rooms/${channel.id}/messages`).set("Authorization", `Bearer ${other.token}`).send({ body: "other" })).status).toBe(201);
  socket.close();
});
