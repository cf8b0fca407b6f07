import { io, type Socket } from "socket.io-client";
import { z, type ZodType } from "zod";
import type { ClientToServerEvents, ServerToClientEvents } from "../src";
import { ClientMessage, ServerMessage } from "../src/modules/lobby/lobby.protocol";
import type { SocketMessageSpec } from "../src/realtime/events";
import { shutdownFace } from "../src/realtime/shutdown";
import { connectSocket } from "./support/realtime";
import { registerUser, startTestServer, type TestServer } from "./support/test-server";

let t: TestServer;
const sockets: Array<{ close(): void }> = [];
beforeAll(async () => { t = await startTestServer(); });
afterEach(() => { for (const s of sockets.splice(0)) s.close(); });
afterAll(async () => { await t.close(); });

type Json = any;
const draft7 = (schema: ZodType, io: "input" | "output") => z.toJSONSchema(schema, { target: "draft-7", io });
async function document(): Promise<Json> {
  const res = await t.http.get("/asyncapi.json");
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  return res.body;
}
const channelAt = (doc: Json, address: string) => Object.values<Json>(doc.channels).find((c) => c.address === address);
/** The socket faces of the kernel (its `server:shutdown`) and of the modules the server started, and their WebSocket doors. */
const faces = () => [shutdownFace, ...t.server.modules.flatMap((m) => (m.socket ? [m.socket] : []))];
const doors = () => t.server.modules.flatMap((m) => m.upgrades ?? []).filter((u) => u.protocol);
const RESERVED = new Set(["disconnect", "disconnecting", "error"]);

/** Every server→client event's name, checked by the compiler against ServerToClientEvents (exactly those). */
const SERVER_EVENTS: Record<keyof ServerToClientEvents, true> = {
  "chat:message": true, "dm:message": true, "room:updated": true, "room:message": true, "room:signal": true,
  "pair:incoming_call": true, "pair:message": true, "pair:signal": true, lobby: true, "server:shutdown": true,
};
const CLIENT_EVENTS: Record<keyof ClientToServerEvents, true> = {
  "chat:subscribe": true, "chat:unsubscribe": true, "chat:send": true, "dm:send": true,
  "room:subscribe": true, "room:unsubscribe": true, "room:signal": true, "pair:signal": true, lobby: true,
};

test("GET /asyncapi.json is an AsyncAPI 3.0.0 document whose servers are where the client connected", async () => {
  const doc = await document();
  expect(doc.asyncapi).toBe("3.0.0");
  expect(doc.info.version).toMatch(/^\d+\.\d+\.\d+/);
  const host = new URL(t.url).host;
  expect(doc.servers.socketio).toMatchObject({ host, protocol: "ws", pathname: "/socket.io/" });
  expect(doc.servers.lobby_api).toMatchObject({ host, protocol: "ws", pathname: "/lobby_api" });
  // Every reference points at something in the document.
  const resolve = (pointer: string) => pointer.slice(2).split("/").reduce((node: Json, key) => node?.[key.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
  const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
  expect(refs.length).toBeGreaterThan(40);
  for (const ref of refs) expect(resolve(JSON.parse(`{${ref}}`).$ref)).toBeDefined();
  for (const [id, op] of Object.entries<Json>(doc.operations)) {
    expect([id, op.action]).toEqual([id, expect.stringMatching(/^(send|receive)$/)]);
    expect(op.channel.$ref).toMatch(/^#\/channels\//);
  }
});

test("every event a live socket handles has a channel, and the document claims no other client event", async () => {
  const user = await registerUser(t);
  const pair = (await t.http.post("/pair/users")).body;
  const doc0 = await document();
  // One dispatcher serves every event (no listener per event to list): an event is handled
  // when a live socket answers it with anything but "no such event".
  const unknown = (answer: Json) => answer?.ok === false && answer.error?.status === 404 && /No event is named/.test(answer.error.detail);
  const candidates = [...Object.values<Json>(doc0.channels).map((c) => c.address as string), "no:such-event"];
  const handled = new Set<string>();
  for (const auth of [{ token: user.token }, { privateId: pair.privateId }]) {
    const client = await connectSocket(t.url, auth);
    sockets.push(client);
    for (const name of candidates) {
      if (name === "/lobby_api" || RESERVED.has(name)) continue;
      if (name === "lobby") {
        // The lobby's event has no ack: it is answered by a `lobby` event.
        const answered = new Promise((resolve) => client.once("lobby" as never, resolve as never));
        client.emit("lobby" as never, { $type: "ping", seq: 1 } as never);
        await answered;
        handled.add(name);
        continue;
      }
      const answer = await (client as Json).timeout(10_000).emitWithAck(name, "not an object");
      if (!unknown(answer)) handled.add(name);
    }
  }
  expect(handled.has("no:such-event")).toBe(false);
  const doc = await document();
  const clientEvents = Object.values<Json>(doc.channels).filter((c) => c.messages.request && c.address !== "/lobby_api").map((c) => c.address);
  expect(new Set(clientEvents)).toEqual(handled);
  expect(new Set(Object.keys(CLIENT_EVENTS))).toEqual(handled);
  const serverEvents = Object.values<Json>(doc.channels).filter((c) => c.messages.event).map((c) => c.address);
  expect(new Set(serverEvents)).toEqual(new Set(Object.keys(SERVER_EVENTS)));
});

test("each payload in the document is z.toJSONSchema() of the schema its handler uses", async () => {
  const doc = await document();
  let checked = 0;
  for (const face of faces()) {
    for (const handler of face.handlers ?? []) {
      const channel = channelAt(doc, handler.event);
      expect(channel.messages.request.payload.schema).toEqual(draft7(handler.schema, "input"));
      const [ok, failed] = channel.messages.ack.payload.schema.anyOf;
      const result = draft7(handler.result, "output") as Json;
      expect(ok.properties).toEqual({ ok: { type: "boolean", const: true }, ...result.properties });
      expect(failed.properties.error.required).toEqual(["status", "title", "detail"]);
      const operation = doc.operations[`receive.${channel.address.replace(":", "_")}`];
      expect(operation.reply.messages[0].$ref).toMatch(/\/messages\/ack$/);
      checked += 1;
    }
    const specs = (side: Record<string, SocketMessageSpec> | undefined, kind: string, io: "input" | "output") => {
      for (const [event, spec] of Object.entries(side ?? {})) {
        expect(channelAt(doc, event).messages[kind].payload.schema).toEqual(draft7(spec.payload, io));
        checked += 1;
      }
    };
    specs(face.events?.receives, "request", "input");
    specs(face.events?.emits, "event", "output");
  }
  expect(checked).toBe(Object.keys(CLIENT_EVENTS).length + Object.keys(SERVER_EVENTS).length);
});

test("/lobby_api has a message for every $type the server parses and every one it sends, with the parser's schemas", async () => {
  const doc = await document();
  expect(doors().map((d) => d.path)).toEqual(["/lobby_api"]);
  const channel = channelAt(doc, "/lobby_api");
  const typeOf = (schema: Json) => schema.shape.$type.value as string;
  for (const [union, prefix] of [[ClientMessage, "client"], [ServerMessage, "server"]] as const) {
    const io = prefix === "client" ? "input" : "output";
    const types = union.options.map(typeOf);
    expect(Object.keys(channel.messages).filter((k) => k.startsWith(`${prefix}.`)).map((k) => channel.messages[k].name).sort()).toEqual([...types].sort());
    for (const option of union.options) expect(channel.messages[`${prefix}.${typeOf(option)}`].payload.schema).toEqual(draft7(option, io));
  }
  expect(channel.messages["client.add_table"].payload.schema.required).toEqual(["$type", "after_id", "table"]);
  // The Socket.IO `lobby` event carries the same messages.
  expect(channelAt(doc, "lobby").messages.request.payload.schema).toEqual(draft7(ClientMessage, "input"));
  expect(channelAt(doc, "lobby").messages.event.payload.schema).toEqual(draft7(ServerMessage, "output"));
});

test("what the server really emits and acknowledges matches the declared schemas, and every declared event occurs", async () => {
  // `server:shutdown` occurs on shutdown only: test/hardening.drain checks it.
  const specs = new Map<string, ZodType>(faces().filter((f) => f !== shutdownFace).flatMap((f) => Object.entries(f.events?.emits ?? {}).map(([event, spec]) => [event, spec.payload] as const)));
  const results = new Map<string, ZodType>(faces().flatMap((f) => (f.handlers ?? []).map((h) => [h.event, h.result] as const)));
  const seen: Array<[string, unknown]> = [];
  const watch = <S extends { onAny(listener: (event: string, ...args: unknown[]) => void): unknown }>(socket: S) => {
    socket.onAny((event, payload) => seen.push([event, payload]));
    return socket;
  };
  const acks: Array<[string, unknown]> = [];
  const request = async (socket: Socket, event: string, payload: object) => {
    const ack = await socket.timeout(10_000).emitWithAck(event, payload);
    expect([event, ack.ok]).toEqual([event, true]);
    acks.push([event, ack]);
    return ack;
  };

  const alice = await registerUser(t), bob = await registerUser(t);
  const sa = watch(await connectSocket(t.url, { token: alice.token }));
  const sb = watch(await connectSocket(t.url, { token: bob.token }));
  sockets.push(sa, sb);
  const auth = (u: { token: string }) => ({ Authorization: `Bearer ${u.token}` });
  const channel = (await t.http.post("/chat/rooms").set(auth(alice)).send({ name: `c-${Date.now()}` })).body;
  await request(sa, "chat:subscribe", { channel_id: channel.id });
  await request(sa, "chat:send", { channel_id: channel.id, body: "hello" });
  await request(sa, "chat:unsubscribe", { channel_id: channel.id });
  await request(sa, "dm:send", { to: bob.username, body: "psst" });
  const room = (await t.http.post("/rooms").set(auth(alice)).send({ name: "Call" })).body;
  await request(sa, "room:subscribe", { guid: room.guid });
  expect((await t.http.post(`/rooms/${room.guid}/join`).set(auth(bob))).status).toBe(200);
  expect((await t.http.post(`/rooms/${room.guid}/messages`).set(auth(bob)).send({ body: "hi all" })).status).toBe(201);
  await request(sb, "room:subscribe", { guid: room.guid });
  await request(sb, "room:signal", { guid: room.guid, to: alice.username, data: { type: "offer", sdp: "v=0" } });
  await request(sb, "room:unsubscribe", { guid: room.guid });
  sa.emit("lobby", { $type: "ping", seq: 7 });

  const [p, q] = [(await t.http.post("/pair/users")).body, (await t.http.post("/pair/users")).body];
  const sp = watch(await connectSocket(t.url, { privateId: p.privateId }));
  const sq = watch(await connectSocket(t.url, { privateId: q.privateId }));
  sockets.push(sp, sq);
  const { roomId } = (await t.http.post(`/pair/users/${q.publicId}/connect`).set({ "X-Private-Id": p.privateId })).body;
  expect((await t.http.post(`/pair/rooms/${roomId}/messages`).set({ "X-Private-Id": p.privateId }).send({ body: "yo" })).status).toBe(201);
  await request(sq, "pair:signal", { roomId, data: { candidate: "c" } });

  const deadline = Date.now() + 10_000;
  while (new Set(seen.map(([event]) => event)).size < specs.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(new Set(seen.map(([event]) => event))).toEqual(new Set(specs.keys()));
  for (const [event, payload] of seen) expect([event, specs.get(event)!.safeParse(payload).error]).toEqual([event, undefined]);
  expect(new Set(acks.map(([event]) => event))).toEqual(new Set([...results.keys()]));
  for (const [event, ack] of acks) {
    const shape = z.object({ ok: z.literal(true) }).extend((results.get(event) as z.ZodObject).shape);
    expect([event, shape.safeParse(ack).error]).toEqual([event, undefined]);
  }
});

test("a socket.io-client typed with the exported events compiles against the real event names and acks", async () => {
  const user = await registerUser(t);
  const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(t.url, { auth: { token: user.token }, transports: ["websocket"], reconnection: false, forceNew: true });
  sockets.push(socket);
  const channel = (await t.http.post("/chat/rooms").set({ Authorization: `Bearer ${user.token}` }).send({ name: `typed-${Date.now()}` })).body;
  const answer = await new Promise<Parameters<Parameters<ClientToServerEvents["chat:send"]>[1]>[0]>((resolve) =>
    socket.emit("chat:send", { channel_id: channel.id, body: "typed" }, resolve),
  );
  if (!answer.ok) throw new Error(answer.error.detail);
  const body: string = answer.message.body;
  expect(body).toBe("typed");

  const failed = await socket.timeout(10_000).emitWithAck("room:signal", { guid: channel.id, to: "nobody", data: {} });
  expect(failed.ok).toBe(false);
  if (!failed.ok) expect(failed.error.status).toBe(404);

  const pong = new Promise((resolve) => socket.on("lobby", (message) => message.$type === "pong" && resolve(message.seq)));
  socket.emit("lobby", { $type: "ping", seq: 1 });
  expect(await pong).toBe(1);

  // What the compiler refuses (checked by `tsc --noEmit`, never run): an event no module
  // handles, a payload missing a field, a field the ack does not have, a server event misnamed.
  const refused = () => {
    // @ts-expect-error not an event
    socket.emit("chat:shout", {}, () => {});
    // @ts-expect-error body is required
    socket.emit("chat:send", { channel_id: channel.id }, () => {});
    socket.emit("dm:send", { to: user.username, body: "x" }, (ack) => {
      // @ts-expect-error dm:send answers a message, not a room
      if (ack.ok) void ack.room;
    });
    // @ts-expect-error the server emits chat:message, not chat:messages
    socket.on("chat:messages", () => {});
  };
  void refused;
});
