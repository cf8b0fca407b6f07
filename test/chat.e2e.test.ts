import { io, type Socket } from "socket.io-client";
import { collect, connectSocket, emitWithAck, openSse } from "./support/realtime";
import { registerUser, startTestServer, uniqueName, type TestServer } from "./support/test-server";

let t: TestServer;
let alice: { username: string; token: string };
let bob: { username: string; token: string };
const sockets: Socket[] = [];
const closers: Array<() => void> = [];

beforeAll(async () => {
  t = await startTestServer({ SSE_HEARTBEAT_SECONDS: "1" });
  alice = await registerUser(t, uniqueName("alice"));
  bob = await registerUser(t, uniqueName("bob"));
});
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
  for (const c of closers.splice(0)) c();
});
afterAll(async () => {
  await t.close();
});

const auth = (user: { token: string }) => ({ Authorization: `Bearer ${user.token}` });

async function createChannel(name = uniqueName("chan")) {
  const res = await t.http.post("/chat/rooms").set(auth(alice)).send({ name });
  expect(res.status).toBe(201);
  return res.body as { id: string; name: string };
}

async function post(channelId: string, body: string, user = alice) {
  const res = await t.http.post(`/chat/rooms/${channelId}/messages`).set(auth(user)).send({ body });
  expect(res.status).toBe(201);
  return res.body as { id: string; body: string };
}

async function socketFor(user: { token: string }) {
  const socket = await connectSocket(t.url, { token: user.token });
  sockets.push(socket);
  return socket;
}

function sse(path: string, headers: Record<string, string> = {}) {
  const stream = openSse(`${t.url}${path}`, headers);
  closers.push(stream.close);
  return stream;
}

describe("channels", () => {
  it("lists no channels as items: [] on a fresh server", async () => {
    const fresh = await startTestServer();
    const { token } = await registerUser(fresh);
    const res = await fresh.http.get("/chat/rooms").set({ Authorization: `Bearer ${token}` });
    await fresh.close();
    expect(res.body).toEqual({ items: [], next_cursor: null });
  });

  it("creates a channel with an absolute Location; names are unique case-insensitively", async () => {
    const name = uniqueName("General");
    const res = await t.http.post("/chat/rooms").set(auth(alice)).send({ name });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: expect.any(String), name, created_by: alice.username, created_at: expect.any(String) });
    expect(res.headers.location).toBe(`${t.url}/chat/rooms/${res.body.id}`);
    const again = await t.http.post("/chat/rooms").set(auth(bob)).send({ name: name.toUpperCase() });
    expect(again.status).toBe(409);
    expect(again.headers["content-type"]).toMatch(/problem\+json/);
    const got = await t.http.get(`/chat/rooms/${res.body.id}`).set(auth(bob));
    expect(got.body).toEqual(res.body);
  });

  it("validates names and ids, and needs auth", async () => {
    expect((await t.http.post("/chat/rooms").set(auth(alice)).send({ name: "" })).status).toBe(400);
    expect((await t.http.post("/chat/rooms").set(auth(alice)).send({ name: "x".repeat(101) })).status).toBe(400);
    expect((await t.http.post("/chat/rooms").set(auth(alice)).send({})).status).toBe(400);
    expect((await t.http.post("/chat/rooms").send({ name: "anonymous" })).status).toBe(401);
    expect((await t.http.get("/chat/rooms").send()).status).toBe(401);
    expect((await t.http.get("/chat/rooms/00000000-0000-4000-8000-000000000000").set(auth(alice))).status).toBe(404);
    expect((await t.http.get("/chat/rooms/not-a-uuid").set(auth(alice))).status).toBe(404);
  });

  it("pages through channels", async () => {
    for (let i = 0; i < 3; i++) await createChannel(uniqueName("page"));
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: any = await t.http.get("/chat/rooms").set(auth(alice)).query({ limit: 2, ...(cursor ? { cursor } : {}) });
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((c: { id: string }) => c.id));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBeGreaterThanOrEqual(3);
  });

  it("pages through names that JavaScript and Postgres lower-case differently", async () => {
    const fresh = await startTestServer();
    try {
      const { token } = await registerUser(fresh);
      const names = ["İka", "ika b", "ika c", "ΟΔΟΣ", "οδοσ x", "zeta"];
      for (const name of names) expect((await fresh.http.post("/chat/rooms").set(auth({ token })).send({ name })).status).toBe(201);
      const seen: string[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 20; pages++) {
        const res: any = await fresh.http.get("/chat/rooms").set(auth({ token })).query({ limit: 1, ...(cursor ? { cursor } : {}) });
        seen.push(...res.body.items.map((c: { name: string }) => c.name));
        cursor = res.body.next_cursor;
        if (!cursor) break;
      }
      expect(seen.sort()).toEqual([...names].sort());
    } finally {
      await fresh.close();
    }
  });

  it("reads a channel id in any letter case as the same channel", async () => {
    const channel = await createChannel();
    const upper = channel.id.toUpperCase();
    expect((await t.http.get(`/chat/rooms/${upper}`).set(auth(alice))).body.id).toBe(channel.id);
    const lower = sse(`/chat/rooms/${channel.id}/subscribe`, auth(bob));
    await lower.ready;
    const viaUpper = await post(upper, "shouting");
    expect(viaUpper).toMatchObject({ channel_id: channel.id });
    expect((await lower.waitFor(1)).map((e) => e.id)).toEqual([viaUpper.id]);
  });
});

describe("channel messages", () => {
  it("posts and reads history newest first, with before and after", async () => {
    const channel = await createChannel();
    const posted = [];
    for (let i = 1; i <= 5; i++) posted.push(await post(channel.id, `m${i}`, i % 2 ? alice : bob));
    expect(posted[0]).toMatchObject({ channel_id: channel.id, room_guid: null, sender: alice.username, recipient: null, body: "m1" });
    expect(posted[0].id).toMatch(/^\d+$/);

    const newest = await t.http.get(`/chat/rooms/${channel.id}/messages?limit=2`).set(auth(bob));
    expect(newest.body.items.map((m: { body: string }) => m.body)).toEqual(["m5", "m4"]);
    const older = await t.http.get(`/chat/rooms/${channel.id}/messages`).query({ limit: 2, before: newest.body.next_cursor }).set(auth(bob));
    expect(older.body.items.map((m: { body: string }) => m.body)).toEqual(["m3", "m2"]);
    const viaCursor = await t.http.get(`/chat/rooms/${channel.id}/messages`).query({ limit: 2, cursor: newest.body.next_cursor }).set(auth(bob));
    expect(viaCursor.body.items).toEqual(older.body.items);
    const after = await t.http.get(`/chat/rooms/${channel.id}/messages`).query({ after: posted[1].id }).set(auth(bob));
    expect(after.body.items.map((m: { body: string }) => m.body)).toEqual(["m3", "m4", "m5"]);
    expect(after.body.next_cursor).toBeNull();
    // Both: the messages between, oldest first.
    const between = await t.http.get(`/chat/rooms/${channel.id}/messages`).query({ after: posted[0].id, before: posted[4].id }).set(auth(bob));
    expect(between.body.items.map((m: { body: string }) => m.body)).toEqual(["m2", "m3", "m4"]);
    expect((await t.http.get(`/chat/rooms/${channel.id}/messages`).query({ before: posted[4].id, cursor: posted[3].id }).set(auth(bob))).status).toBe(400);
  });

  it("rejects bad bodies, unknown channels and bad paging", async () => {
    const channel = await createChannel();
    expect((await t.http.post(`/chat/rooms/${channel.id}/messages`).set(auth(alice)).send({ body: "" })).status).toBe(400);
    expect((await t.http.post(`/chat/rooms/${channel.id}/messages`).set(auth(alice)).send({ body: "x".repeat(4001) })).status).toBe(400);
    expect((await t.http.post(`/chat/rooms/${channel.id}/messages`).set(auth(alice)).send({ body: 42 })).status).toBe(400);
    expect((await t.http.post(`/chat/rooms/${channel.id}/messages`).set(auth(alice)).send({ body: "x".repeat(4000) })).status).toBe(201);
    expect((await t.http.post(`/chat/rooms/${channel.id}/messages`).set(auth(alice)).send({ body: "a\u0000b" })).status).toBe(400);
    expect((await t.http.post("/chat/rooms").set(auth(alice)).send({ name: "x\u0000y" })).status).toBe(400);
    // Lengths count characters: 4000 emoji are 4000 characters.
    expect((await t.http.post(`/chat/rooms/${channel.id}/messages`).set(auth(alice)).send({ body: "😀".repeat(4000) })).status).toBe(201);
    expect((await t.http.post(`/chat/rooms/${channel.id}/messages`).set(auth(alice)).send({ body: "😀".repeat(4001) })).status).toBe(400);
    const unknown = "00000000-0000-4000-8000-000000000000";
    expect((await t.http.post(`/chat/rooms/${unknown}/messages`).set(auth(alice)).send({ body: "hi" })).status).toBe(404);
    expect((await t.http.get(`/chat/rooms/${unknown}/messages`).set(auth(alice))).status).toBe(404);
    expect((await t.http.get(`/chat/rooms/${channel.id}/messages?after=abc`).set(auth(alice))).status).toBe(400);
    expect((await t.http.get(`/chat/rooms/${channel.id}/messages?before=99999999999999999999`).set(auth(alice))).status).toBe(400);
    expect((await t.http.get(`/chat/rooms/${channel.id}/messages?limit=500`).set(auth(alice))).status).toBe(400);
  });

  it("keeps every message of concurrent posters, in one id order for everyone", async () => {
    const channel = await createChannel();
    const stream = sse(`/chat/rooms/${channel.id}/subscribe`, auth(bob));
    await stream.ready;
    const ids = await Promise.all(Array.from({ length: 40 }, (_, i) => post(channel.id, `c${i}`, i % 2 ? alice : bob).then((m) => m.id)));
    const events = await stream.waitFor(40);
    const delivered = events.map((e) => e.id!);
    expect([...delivered].sort()).toEqual([...ids].sort());
    expect(delivered.map(BigInt)).toEqual([...delivered].map(BigInt).sort((a, b) => (a < b ? -1 : 1)));
    const history = await t.http.get(`/chat/rooms/${channel.id}/messages?after=0&limit=200`).set(auth(alice));
    expect(history.body.items.map((m: { id: string }) => m.id)).toEqual(delivered);
  });
});

describe("direct messages", () => {
  it("sends, lists with and without `with`, 404 for unknown users", async () => {
    const carol = await registerUser(t, uniqueName("carol"));
    const res = await t.http.post(`/chat/users/${carol.username}/messages`).set(auth(alice)).send({ body: "hi carol" });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ channel_id: null, room_guid: null, sender: alice.username, recipient: carol.username, body: "hi carol" });
    await t.http.post(`/chat/users/${alice.username}/messages`).set(auth(carol)).send({ body: "hi alice" });
    await t.http.post(`/chat/users/${bob.username}/messages`).set(auth(carol)).send({ body: "hi bob" });

    const withAlice = await t.http.get(`/chat/messages?with=${alice.username}`).set(auth(carol));
    expect(withAlice.body.items.map((m: { body: string }) => m.body)).toEqual(["hi alice", "hi carol"]);
    const all = await t.http.get(`/chat/messages`).set(auth(carol));
    expect(all.body.items.map((m: { body: string }) => m.body)).toEqual(["hi bob", "hi alice", "hi carol"]);
    const bobs = await t.http.get(`/chat/messages?with=${carol.username}`).set(auth(bob));
    expect(bobs.body.items.map((m: { body: string }) => m.body)).toEqual(["hi bob"]);

    expect((await t.http.post(`/chat/users/nobody_here/messages`).set(auth(alice)).send({ body: "x" })).status).toBe(404);
    expect((await t.http.get(`/chat/messages?with=nobody_here`).set(auth(alice))).status).toBe(404);
  });

  it("go with a deleted user, both ways", async () => {
    const dave = await registerUser(t, uniqueName("dave"));
    await t.http.post(`/chat/users/${dave.username}/messages`).set(auth(alice)).send({ body: "to dave" });
    await t.http.post(`/chat/users/${alice.username}/messages`).set(auth(dave)).send({ body: "from dave" });
    expect((await t.http.delete(`/users/${dave.username}`).set(auth(dave))).status).toBe(204);
    const all = await t.http.get(`/chat/messages`).set(auth(alice));
    expect(all.body.items.map((m: { body: string }) => m.body)).not.toEqual(expect.arrayContaining(["to dave"]));
    expect(all.body.items.map((m: { body: string }) => m.body)).not.toEqual(expect.arrayContaining(["from dave"]));
  });
});

describe("Server-Sent Events", () => {
  it("streams channel messages and replays after Last-Event-ID exactly once", async () => {
    const channel = await createChannel();
    const first = sse(`/chat/rooms/${channel.id}/subscribe`, auth(bob));
    const res = await first.ready;
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/event-stream/);
    const m1 = await post(channel.id, "one");
    const [e1] = await first.waitFor(1);
    expect(e1).toMatchObject({ id: m1.id, event: "message" });
    expect(JSON.parse(e1.data)).toEqual(m1);
    first.close();

    const m2 = await post(channel.id, "two");
    const m3 = await post(channel.id, "three");
    const resumed = sse(`/chat/rooms/${channel.id}/subscribe`, { ...auth(bob), "Last-Event-ID": m1.id });
    await resumed.ready;
    const m4 = await post(channel.id, "four");
    const events = await resumed.waitFor(3);
    expect(events.map((e) => e.id)).toEqual([m2.id, m3.id, m4.id]);
    await new Promise((r) => setTimeout(r, 200));
    expect(resumed.events).toHaveLength(3);

    const viaQuery = sse(`/chat/rooms/${channel.id}/subscribe?after=${m3.id}&access_token=${bob.token}`);
    await viaQuery.ready;
    expect((await viaQuery.waitFor(1)).map((e) => e.id)).toEqual([m4.id]);

    // An id beyond the stream's end is a mistake, not a wait for ids that may never come.
    expect((await sse(`/chat/rooms/${channel.id}/subscribe?after=${BigInt(m4.id) + 2n}`, auth(bob)).ready).statusCode).toBe(400);
  });

  it("refuses without auth, for unknown channels and a bad Last-Event-ID", async () => {
    const channel = await createChannel();
    expect((await sse(`/chat/rooms/${channel.id}/subscribe`).ready).statusCode).toBe(401);
    expect((await sse(`/chat/rooms/00000000-0000-4000-8000-000000000000/subscribe`, auth(bob)).ready).statusCode).toBe(404);
    expect((await sse(`/chat/rooms/${channel.id}/subscribe`, { ...auth(bob), "Last-Event-ID": "nope" }).ready).statusCode).toBe(400);
    expect((await sse(`/chat/subscribe?access_token=garbage`).ready).statusCode).toBe(401);
  });

  it("ends the streams of a session that logs out", async () => {
    const ivy = await registerUser(t, uniqueName("ivy"));
    const stream = sse(`/chat/subscribe?access_token=${ivy.token}`);
    const res = await stream.ready;
    const ended = new Promise((resolve) => res.once("end", resolve));
    expect((await t.http.post("/auth/logout").set(auth(ivy))).status).toBe(204);
    await ended;
  });

  it("ends an HTTP Basic stream when the password changes", async () => {
    const jay = await registerUser(t, uniqueName("jay"), "first password");
    const basicAuth = { Authorization: `Basic ${Buffer.from(`${jay.username}:first password`).toString("base64")}` };
    const stream = sse(`/chat/subscribe`, basicAuth);
    const res = await stream.ready;
    expect(res.statusCode).toBe(200);
    const ended = new Promise((resolve) => res.once("end", resolve));
    const change = await t.http.patch(`/users/${jay.username}`).set(basicAuth).send({ password: "second password", current_password: "first password" });
    expect(change.status).toBe(200);
    await ended;
  });

  it("sends heartbeats on an idle stream", async () => {
    const channel = await createChannel();
    const res = await new Promise<import("node:http").IncomingMessage>((resolve) =>
      require("node:http").get(`${t.url}/chat/rooms/${channel.id}/subscribe`, { headers: auth(bob) }, resolve),
    );
    let raw = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => (raw += chunk));
    await new Promise((r) => setTimeout(r, 1500));
    res.destroy();
    expect(raw).toMatch(/^: heartbeat$/m);
  });

  it("streams the caller's direct messages with replay", async () => {
    const erin = await registerUser(t, uniqueName("erin"));
    const before = (await t.http.post(`/chat/users/${erin.username}/messages`).set(auth(alice)).send({ body: "early" })).body;
    const stream = sse(`/chat/subscribe?after=0`, auth(erin));
    await stream.ready;
    const later = (await t.http.post(`/chat/users/${erin.username}/messages`).set(auth(bob)).send({ body: "later" })).body;
    const sent = (await t.http.post(`/chat/users/${alice.username}/messages`).set(auth(erin)).send({ body: "mine" })).body;
    const events = await stream.waitFor(3);
    expect(events.map((e) => e.id)).toEqual([before.id, later.id, sent.id]);
  });
});

describe("Socket.IO", () => {
  it("refuses a handshake without a valid, live token", async () => {
    await expect(connectSocket(t.url, {})).rejects.toThrow("unauthorized");
    await expect(connectSocket(t.url, { token: "garbage" })).rejects.toThrow("unauthorized");
    const frank = await registerUser(t, uniqueName("frank"));
    await t.http.post("/auth/logout").set(auth(frank));
    await expect(connectSocket(t.url, { token: frank.token })).rejects.toThrow("unauthorized");
  });

  it("delivers REST posts to socket subscribers and socket posts to SSE and history", async () => {
    const channel = await createChannel();
    const socket = await socketFor(bob);
    const received = collect(socket, "chat:message");
    expect(await emitWithAck(socket, "chat:subscribe", { channel_id: channel.id })).toEqual({ ok: true, channel_id: channel.id });
    const stream = sse(`/chat/rooms/${channel.id}/subscribe`, auth(alice));
    await stream.ready;

    const viaRest = await post(channel.id, "from rest");
    const ack = await emitWithAck(socket, "chat:send", { channel_id: channel.id, body: "from socket" });
    expect(ack).toEqual({ ok: true, message: expect.objectContaining({ body: "from socket", sender: bob.username, channel_id: channel.id }) });

    expect((await received.next(2)).map((m) => m.id)).toEqual([viaRest.id, ack.message.id]);
    expect((await stream.waitFor(2)).map((e) => e.id)).toEqual([viaRest.id, ack.message.id]);
    const history = await t.http.get(`/chat/rooms/${channel.id}/messages`).set(auth(alice));
    expect(history.body.items[0]).toEqual(ack.message);

    expect(await emitWithAck(socket, "chat:unsubscribe", { channel_id: channel.id })).toEqual({ ok: true, channel_id: channel.id });
    await post(channel.id, "after unsubscribe");
    await stream.waitFor(3);
    expect(received.items).toHaveLength(2);
  });

  it("replays missed messages in order before acknowledging a subscribe with `after`", async () => {
    const channel = await createChannel();
    const m1 = await post(channel.id, "a");
    const m2 = await post(channel.id, "b");
    const m3 = await post(channel.id, "c");
    const socket = await socketFor(bob);
    const received = collect(socket, "chat:message");
    const ack = await emitWithAck(socket, "chat:subscribe", { channel_id: channel.id, after: m1.id });
    expect(ack.ok).toBe(true);
    expect(received.items.map((m) => m.id)).toEqual([m2.id, m3.id]);
    const m4 = await post(channel.id, "d");
    expect((await received.next(3)).map((m) => m.id)).toEqual([m2.id, m3.id, m4.id]);
  });

  it("applies concurrent subscribes and unsubscribes in order, without duplicates", async () => {
    const channel = await createChannel();
    const socket = await socketFor(bob);
    const received = collect(socket, "chat:message");
    const acks = await Promise.all([
      emitWithAck(socket, "chat:subscribe", { channel_id: channel.id }),
      emitWithAck(socket, "chat:subscribe", { channel_id: channel.id }),
    ]);
    expect(acks.every((a) => a.ok)).toBe(true);
    const m1 = await post(channel.id, "once");
    expect((await received.next(1)).map((m) => m.id)).toEqual([m1.id]);

    await Promise.all([
      emitWithAck(socket, "chat:subscribe", { channel_id: channel.id }),
      emitWithAck(socket, "chat:unsubscribe", { channel_id: channel.id }),
    ]);
    const other = await socketFor(alice);
    const control = collect(other, "chat:message");
    await emitWithAck(other, "chat:subscribe", { channel_id: channel.id });
    await post(channel.id, "after unsubscribe");
    await control.next(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(received.items).toHaveLength(1);
  });

  it("acknowledges errors with a status", async () => {
    const socket = await socketFor(bob);
    const bad = await emitWithAck(socket, "chat:send", { channel_id: "nope", body: "x" });
    expect(bad).toMatchObject({ ok: false, error: { status: 400, title: expect.any(String), detail: expect.any(String) } });
    const missing = await emitWithAck(socket, "chat:send", { channel_id: "00000000-0000-4000-8000-000000000000", body: "x" });
    expect(missing).toMatchObject({ ok: false, error: { status: 404 } });
    expect(await emitWithAck(socket, "chat:subscribe", { channel_id: "00000000-0000-4000-8000-000000000000" })).toMatchObject({ ok: false, error: { status: 404 } });
    expect(await emitWithAck(socket, "dm:send", { to: "nobody_here", body: "x" })).toMatchObject({ ok: false, error: { status: 404 } });
    expect(await emitWithAck(socket, "dm:send", "garbage")).toMatchObject({ ok: false, error: { status: 400 } });
  });

  it("delivers direct messages to every connection of the recipient", async () => {
    const gina = await registerUser(t, uniqueName("gina"));
    const phone = await socketFor(gina);
    const laptop = await socketFor(gina);
    const onPhone = collect(phone, "dm:message");
    const onLaptop = collect(laptop, "dm:message");
    const sender = await socketFor(alice);
    const ack = await emitWithAck(sender, "dm:send", { to: gina.username, body: "hello gina" });
    expect(ack.ok).toBe(true);
    const viaRest = (await t.http.post(`/chat/users/${gina.username}/messages`).set(auth(bob)).send({ body: "rest dm" })).body;
    expect((await onPhone.next(2)).map((m) => m.id)).toEqual([ack.message.id, viaRest.id]);
    expect((await onLaptop.next(2)).map((m) => m.id)).toEqual([ack.message.id, viaRest.id]);
  });

  it("delivers every direct message committed after the socket connected", async () => {
    const kim = await registerUser(t, uniqueName("kim"));
    for (let i = 0; i < 20; i++) {
      const socket = await socketFor(kim);
      const received = collect(socket, "dm:message");
      const sent = (await t.http.post(`/chat/users/${kim.username}/messages`).set(auth(alice)).send({ body: `right away ${i}` })).body;
      expect((await received.next(1)).map((m) => m.id)).toEqual([sent.id]);
      socket.close();
    }
  });

  it("acknowledges an unknown event with 404", async () => {
    const socket = await socketFor(bob);
    expect(await emitWithAck(socket, "no:such:event", {})).toMatchObject({ ok: false, error: { status: 404 } });
  });

  it("refuses to follow from an id beyond the channel's newest message", async () => {
    const channel = await createChannel();
    const m = await post(channel.id, "only");
    const socket = await socketFor(bob);
    const ack = await emitWithAck(socket, "chat:subscribe", { channel_id: channel.id, after: String(BigInt(m.id) + 5n) });
    expect(ack).toMatchObject({ ok: false, error: { status: 400 } });
  });

  it("disconnects a socket when its session ends", async () => {
    const hank = await registerUser(t, uniqueName("hank"));
    const socket = await socketFor(hank);
    const disconnected = new Promise((resolve) => socket.once("disconnect", resolve));
    expect((await t.http.post("/auth/logout").set(auth(hank))).status).toBe(204);
    await disconnected;
  });
});

describe("slow clients", () => {
  it("replays a backlog far larger than the buffer bound to clients that read, at their pace", async () => {
    // Under twice a stream's highWaterMark, so no write is ever refused and no "drain" comes.
    const limited = await startTestServer({ CLIENT_BUFFER_LIMIT_BYTES: "24576" });
    const open: Socket[] = [];
    try {
      const user = await registerUser(limited);
      const headers = { Authorization: `Bearer ${user.token}` };
      const channel = (await limited.http.post("/chat/rooms").set(headers).send({ name: "backlog" })).body;
      const first = (await limited.http.post(`/chat/rooms/${channel.id}/messages`).set(headers).send({ body: "start" })).body;
      const total = 150; // 600 kB after `first`: 24 times the bound
      for (let sent = 0; sent < total; sent += 25)
        await Promise.all(Array.from({ length: 25 }, () => limited.http.post(`/chat/rooms/${channel.id}/messages`).set(headers).send({ body: "z".repeat(4000) })));

      const stream = openSse(`${limited.url}/chat/rooms/${channel.id}/subscribe?after=${first.id}`, headers);
      await stream.ready;
      const events = await stream.waitFor(total, 30_000);
      expect(new Set(events.map((e) => e.id)).size).toBe(total);
      stream.close();

      // Long-polling (engine.io queues every packet until the next poll) and WebSocket.
      for (const transports of [["polling"], ["websocket"]]) {
        const socket = io(limited.url, { auth: { token: user.token }, transports, reconnection: false, forceNew: true });
        open.push(socket);
        await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
        const received = collect(socket, "chat:message");
        const ack = await socket.timeout(30_000).emitWithAck("chat:subscribe", { channel_id: channel.id, after: first.id });
        expect(ack.ok).toBe(true);
        expect(new Set((await received.next(total, 30_000)).map((m) => m.id)).size).toBe(total);
        expect(socket.connected).toBe(true);
      }
    } finally {
      for (const socket of open) socket.close();
      await limited.close();
    }
  });

  it("cuts off a client that stops reading; the others get everything", async () => {
    const limited = await startTestServer({ CLIENT_BUFFER_LIMIT_BYTES: "65536" });
    try {
      const user = await registerUser(limited);
      const headers = { Authorization: `Bearer ${user.token}` };
      const channel = (await limited.http.post("/chat/rooms").set(headers).send({ name: "firehose" })).body;
      const reader = openSse(`${limited.url}/chat/rooms/${channel.id}/subscribe`, headers);
      const stalled = openSse(`${limited.url}/chat/rooms/${channel.id}/subscribe`, headers);
      const stalledResponse = await stalled.ready;
      await reader.ready;
      stalledResponse.pause();
      const ended = new Promise<void>((resolve) => stalledResponse.socket.once("close", () => resolve()));
      const body = "x".repeat(4000);
      const total = 1500;
      // Batches of 10 (40 kB, under the 64 kB bound) and the reader keeps up before the
      // next: a busy test machine must not make the reading client look slow too.
      const batch = 10;
      for (let sent = 0; sent < total; sent += batch) {
        await Promise.all(Array.from({ length: batch }, () => limited.http.post(`/chat/rooms/${channel.id}/messages`).set(headers).send({ body })));
        await reader.waitFor(sent + batch, 30_000);
      }
      stalledResponse.resume();
      await ended;
      expect(stalled.events.length).toBeLessThan(total);
      reader.close();
    } finally {
      await limited.close();
    }
  });

  it("cuts off a Socket.IO client that stops reading; the others get everything", async () => {
    const limited = await startTestServer({ CLIENT_BUFFER_LIMIT_BYTES: "65536" });
    const open: Socket[] = [];
    try {
      const user = await registerUser(limited);
      const headers = { Authorization: `Bearer ${user.token}` };
      const channel = (await limited.http.post("/chat/rooms").set(headers).send({ name: "firehose" })).body;
      const reader = await connectSocket(limited.url, { token: user.token });
      const stalled = await connectSocket(limited.url, { token: user.token });
      open.push(reader, stalled);
      const received = collect(reader, "chat:message");
      const stalledReceived = collect(stalled, "chat:message");
      for (const socket of [reader, stalled]) expect((await emitWithAck(socket, "chat:subscribe", { channel_id: channel.id })).ok).toBe(true);
      const disconnected = new Promise<string>((resolve) => stalled.once("disconnect", (reason) => resolve(reason)));
      // Stop reading the stalled client's TCP socket: the server's output to it piles up.
      const tcp = (stalled.io.engine.transport as unknown as { ws: { _socket: import("node:net").Socket } }).ws._socket;
      tcp.pause();
      const body = "y".repeat(4000);
      const total = 1500;
      const batch = 10;
      for (let sent = 0; sent < total; sent += batch) {
        await Promise.all(Array.from({ length: batch }, () => limited.http.post(`/chat/rooms/${channel.id}/messages`).set(headers).send({ body })));
        await received.next(sent + batch, 30_000);
      }
      tcp.resume();
      // The server drops the connection at once, unread output and all.
      expect(["io server disconnect", "transport close"]).toContain(await disconnected);
      expect(stalledReceived.items.length).toBeLessThan(total);
      expect(limited.server.io.engine.clientsCount).toBe(1);
    } finally {
      for (const socket of open) socket.close();
      await limited.close();
    }
  });
});
