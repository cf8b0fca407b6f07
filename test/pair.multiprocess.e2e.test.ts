import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Socket } from "socket.io-client";
import { collect, connectSocket, emitWithAck } from "./support/realtime";
import { startProcess, type ServerProcess } from "./support/processes";
import { freshDatabase, testDatabase, type FreshDatabase } from "./support/test-server";

/** Pair identities on two server processes sharing Postgres and Redis. */
const enabled = testDatabase === "postgres" && !!process.env.REDIS_URL;
const describeShared = enabled ? describe : describe.skip;
let database: FreshDatabase;
const processes: ServerProcess[] = [];
const sockets: Socket[] = [];

afterAll(async () => {
  if (!enabled) return;
  for (const s of sockets) s.close();
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await database.drop();
});

async function json(url: string, method: string, privateId?: string, body?: unknown) {
  const res = await fetch(url, {
    method,
    headers: { "content-type": "application/json", ...(privateId ? { "x-private-id": privateId } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: res.status === 204 ? null : ((await res.json()) as any) };
}

describeShared("pair calls across two processes", () => {
  it("incoming calls, messages, signals and deletion cross processes", async () => {
    database = await freshDatabase();
    if (database.config.kind !== "postgres") throw new Error("postgres expected");
    const env = {
      HOST: "127.0.0.1", PORT: "0", DATABASE_URL: database.config.url, REDIS_URL: process.env.REDIS_URL!,
      REDIS_PREFIX: `convene-pair-${randomBytes(6).toString("hex")}:`, JWT_SECRET: randomBytes(32).toString("hex"),
      DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "convene-pair-mp-")), RATE_LIMIT_AUTH_PER_MINUTE: "0", LOG_LEVEL: "info",
    };
    for (let i = 0; i < 2; i++) processes.push(startProcess(env));
    const [p1, p2] = await Promise.all(processes.map((p) => p.listening()));
    const a = (await json(`${p1}/pair/users`, "POST")).body;
    const b = (await json(`${p2}/pair/users`, "POST")).body;

    // Each has a socket on both processes.
    const sa1 = await connectSocket(p1, { privateId: a.privateId });
    const sb1 = await connectSocket(p1, { privateId: b.privateId });
    const sb2 = await connectSocket(p2, { privateId: b.privateId });
    sockets.push(sa1, sb1, sb2);
    const calls = collect(sb2, "pair:incoming_call");
    const messages = collect(sb2, "pair:message");
    const messagesA = collect(sa1, "pair:message");
    const signals = collect(sb2, "pair:signal");

    const connect = await json(`${p1}/pair/users/${b.publicId}/connect`, "POST", a.privateId);
    expect(connect.status).toBe(200);
    const { roomId } = connect.body;
    // Same roomId from either process, whoever asks.
    expect((await json(`${p2}/pair/users/${a.publicId}/connect`, "POST", b.privateId)).body.roomId).toBe(roomId);
    expect((await calls.next(1))[0]).toEqual({ roomId, from: { publicId: a.publicId, username: a.username } });

    // Messages posted on either process reach the sockets on both, in order.
    for (let i = 0; i < 10; i++) {
      const [url, who] = i % 2 ? [p2, b] : [p1, a];
      expect((await json(`${url}/pair/rooms/${roomId}/messages`, "POST", who.privateId, { body: `m${i}` })).status).toBe(201);
    }
    const expected = Array.from({ length: 10 }, (_, i) => `m${i}`);
    expect((await messages.next(10)).map((m) => m.body)).toEqual(expected);
    expect((await messagesA.next(10)).map((m) => m.body)).toEqual(expected);
    expect((await messages.next(10)).every((m) => m.room_id === roomId)).toBe(true);

    // A signal from process 1 reaches b's sockets on both processes.
    const ack = await emitWithAck(sa1, "pair:signal", { roomId, data: { sdp: "offer" } });
    expect(ack).toEqual({ ok: true, delivered: 2 });
    expect((await signals.next(1))[0]).toEqual({ roomId, from: { publicId: a.publicId, username: a.username }, data: { sdp: "offer" } });

    // Deleting b on process 1 ends its sockets on both processes.
    const ended = Promise.all([sb1, sb2].map((s) => new Promise((resolve) => s.once("disconnect", resolve))));
    expect((await json(`${p1}/pair/users/me`, "DELETE", b.privateId)).status).toBe(204);
    await ended;
    expect((await json(`${p2}/pair/calls`, "GET", b.privateId)).status).toBe(401);
    expect((await json(`${p2}/pair/rooms/${roomId}/messages`, "GET", a.privateId)).status).toBe(404);
  }, 60_000);
});
