import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Socket } from "socket.io-client";
import { collect, connectSocket, emitWithAck } from "./support/realtime";
import { startProcess, type ServerProcess } from "./support/processes";
import { freshDatabase, testDatabase, uniqueName, type FreshDatabase } from "./support/test-server";

/**
 * A call across two server processes on one Postgres and one Redis: signaling, room
 * updates and leaving reach sockets on the other process. Runs in the postgres project
 * when REDIS_URL is set.
 */
const enabled = testDatabase === "postgres" && !!process.env.REDIS_URL;
const describeShared = enabled ? describe : describe.skip;

let database: FreshDatabase;
const processes: ServerProcess[] = [];
const sockets: Socket[] = [];
let urls: string[] = [];

beforeAll(async () => {
  if (!enabled) return;
  database = await freshDatabase();
  if (database.config.kind !== "postgres") throw new Error("postgres expected");
  const env = {
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: database.config.url,
    REDIS_URL: process.env.REDIS_URL!,
    REDIS_PREFIX: `convene-test-rooms-${randomBytes(6).toString("hex")}:`,
    JWT_SECRET: randomBytes(32).toString("hex"),
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "convene-rooms-mp-")),
    BCRYPT_ROUNDS: "4",
    RATE_LIMIT_AUTH_PER_MINUTE: "0",
    LOG_LEVEL: "info",
  };
  // One after the other: both run the migrations on start.
  processes.push(startProcess(env));
  urls.push(await processes[0].listening());
  processes.push(startProcess(env));
  urls.push(await processes[1].listening());
}, 90_000);

afterAll(async () => {
  if (!enabled) return;
  for (const s of sockets) s.close();
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await database.drop();
});

async function json(url: string, method: string, body?: unknown, token?: string) {
  const res = await fetch(url, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
const register = async (url: string, prefix: string) =>
  (await json(`${url}/auth/register`, "POST", { username: uniqueName(prefix), password: "mp password" })).body as { user: { username: string }; token: string };
async function socket(url: string, token: string) {
  const s = await connectSocket(url, { token });
  sockets.push(s);
  return s;
}

describeShared("a conference room across two server processes", () => {
  it("carries an offer/answer/candidate exchange, room:updated and leaving between processes; outsiders are refused", async () => {
    const [a, b] = urls;
    const alice = await register(a, "mpa");
    const bob = await register(b, "mpb");
    const eve = await register(b, "mpe");
    const room = (await json(`${a}/rooms`, "POST", { name: "call", capacity: 3 }, alice.token)).body;
    expect((await json(`${b}/rooms/${room.guid}/join`, "POST", undefined, bob.token)).status).toBe(200);

    const onA = await socket(a, alice.token);
    const onB = await socket(b, bob.token);
    const eveOnB = await socket(b, eve.token);
    const updatesA = collect(onA, "room:updated");
    const updatesB = collect(onB, "room:updated");
    const messagesB = collect(onB, "room:message");
    expect((await emitWithAck(onA, "room:subscribe", { guid: room.guid })).ok).toBe(true);
    expect((await emitWithAck(onB, "room:subscribe", { guid: room.guid })).ok).toBe(true);
    expect((await emitWithAck(eveOnB, "room:subscribe", { guid: room.guid })).error.status).toBe(403);

    // Offer A → B, answer B → A, candidates both ways: each on the other process.
    const signalsA = collect(onA, "room:signal");
    const signalsB = collect(onB, "room:signal");
    const offer = { type: "offer", sdp: "v=0 offer" };
    expect(await emitWithAck(onA, "room:signal", { guid: room.guid, to: bob.user.username, data: offer })).toEqual({ ok: true, delivered: 1 });
    expect((await signalsB.next(1))[0]).toEqual({ guid: room.guid, from: alice.user.username, data: offer });
    const answer = { type: "answer", sdp: "v=0 answer" };
    expect(await emitWithAck(onB, "room:signal", { guid: room.guid, to: alice.user.username, data: answer })).toEqual({ ok: true, delivered: 1 });
    expect((await signalsA.next(1))[0]).toEqual({ guid: room.guid, from: bob.user.username, data: answer });
    const candidate = { candidate: "candidate:1 1 udp 2122260223 10.0.0.1 54400 typ host", sdpMid: "0", sdpMLineIndex: 0 };
    expect(await emitWithAck(onA, "room:signal", { guid: room.guid, to: bob.user.username, data: candidate })).toEqual({ ok: true, delivered: 1 });
    expect(await emitWithAck(onB, "room:signal", { guid: room.guid, to: alice.user.username, data: candidate })).toEqual({ ok: true, delivered: 1 });
    expect((await signalsB.next(2))[1].data).toEqual(candidate);
    expect((await signalsA.next(2))[1].data).toEqual(candidate);

    // A second socket of bob's, on A, gets what is sent to bob too.
    const bobOnA = await socket(a, bob.token);
    const signalsBobOnA = collect(bobOnA, "room:signal");
    expect(await emitWithAck(onA, "room:signal", { guid: room.guid, to: bob.user.username, data: { type: "renegotiate" } })).toEqual({ ok: true, delivered: 2 });
    expect((await signalsBobOnA.next(1))[0].from).toBe(alice.user.username);

    // Outsiders: a sender who is not in the room (403); a recipient who is not (404).
    expect((await emitWithAck(eveOnB, "room:signal", { guid: room.guid, to: alice.user.username, data: offer })).error.status).toBe(403);
    expect((await emitWithAck(onA, "room:signal", { guid: room.guid, to: eve.user.username, data: offer })).error.status).toBe(404);
    expect((await emitWithAck(onA, "room:signal", { guid: "00000000-0000-4000-8000-000000000000", to: bob.user.username, data: offer })).error.status).toBe(404);

    // room:updated on both processes, wherever the change was made.
    expect((await json(`${b}/rooms/${room.guid}/join`, "POST", undefined, eve.token)).status).toBe(200);
    expect((await updatesA.next(1))[0].participants).toContain(eve.user.username);
    expect((await updatesB.next(1))[0].participants).toContain(eve.user.username);

    // Bob (on B) is removed on A: one last room:updated, then no chat and no updates.
    expect((await json(`${a}/rooms/${room.guid}/participants/${bob.user.username}`, "DELETE", undefined, alice.token)).status).toBe(200);
    expect((await updatesB.next(2))[1].participants).toEqual([alice.user.username, eve.user.username]);
    expect((await json(`${a}/rooms/${room.guid}/messages`, "POST", { body: "after bob" }, alice.token)).status).toBe(201);
    expect((await json(`${a}/rooms/${room.guid}/leave`, "POST", undefined, eve.token)).status).toBe(200);
    expect((await updatesA.next(3))[2].participants).toEqual([alice.user.username]);
    await new Promise((r) => setTimeout(r, 500));
    expect(updatesB.items).toHaveLength(2);
    expect(messagesB.items).toHaveLength(0);
    expect((await emitWithAck(onB, "room:signal", { guid: room.guid, to: alice.user.username, data: offer })).error.status).toBe(403);
  }, 90_000);
});
