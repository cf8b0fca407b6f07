import type { Socket } from "socket.io-client";
import { connectSocket, emitWithAck } from "./support/realtime";
import { registerUser, startTestServer, type TestServer } from "./support/test-server";

/**
 * Session checks, stream positions and channel checks that arrive together are read in
 * one query per turn of the event loop: each caller must still get its own answer.
 */
let t: TestServer;

beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.close();
});

it("answers each of many simultaneous connects and subscribes on its own, ended sessions and missing channels included", async () => {
  const users = await Promise.all(Array.from({ length: 12 }, () => registerUser(t)));
  const channel = (await t.http.post("/chat/rooms").set({ Authorization: `Bearer ${users[0].token}` }).send({ name: "batched" })).body;
  const loggedOut = users.slice(0, 3);
  for (const user of loggedOut) expect((await t.http.post("/auth/logout").set({ Authorization: `Bearer ${user.token}` })).status).toBe(204);

  const connects = await Promise.allSettled(users.map((user) => connectSocket(t.url, { token: user.token })));
  const sockets = connects.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  try {
    expect(connects.map((result) => result.status)).toEqual(users.map((_, i) => (i < loggedOut.length ? "rejected" : "fulfilled")));
    const missing = "00000000-0000-4000-8000-000000000000";
    const acks = await Promise.all(sockets.map((socket: Socket, i) => emitWithAck(socket, "chat:subscribe", { channel_id: i % 2 === 0 ? channel.id : missing })));
    expect(acks.map((ack) => (ack.ok ? 200 : ack.error.status))).toEqual(sockets.map((_, i) => (i % 2 === 0 ? 200 : 404)));
  } finally {
    for (const socket of sockets) socket.close();
  }
}, 30_000);
