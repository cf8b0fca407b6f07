import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import request from "supertest";
import { collect, connectSocket, emitWithAck } from "./support/realtime";
import { startProcess, type ServerProcess } from "./support/processes";
import { testDatabase } from "./support/test-server";

/** A privateId shows in no answer but its creation's and in no log line, debug level included. */
const run = testDatabase === "pglite" ? test : test.skip;
let server: ServerProcess | undefined;
afterAll(async () => { await server?.stop("SIGKILL"); });

run("a privateId appears in no response but its creation and in no log line", async () => {
  server = startProcess({
    HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "trace", PGLITE_DATA_DIR: "memory://", RATE_LIMIT_AUTH_PER_MINUTE: "0",
    JWT_SECRET: randomBytes(32).toString("hex"), DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "convene-pair-leak-")),
  });
  const url = await server.listening(60_000);
  const answers: string[] = [];
  async function call(method: string, route: string, headers: Record<string, string> = {}, body?: unknown) {
    // supertest, since fetch sends no body with GET.
    let req = (request(url) as any)[method.toLowerCase()](route).set(headers);
    if (body !== undefined) req = req.send(body);
    const res = await req;
    answers.push(JSON.stringify(res.headers) + res.text);
    return { status: res.status as number, body: res.body };
  }
  const create = async () => {
    const res = await fetch(`${url}/pair/users`, { method: "POST" });
    expect(res.status).toBe(201);
    return (await res.json()) as { publicId: string; privateId: string };
  };
  const a = await create(), b = await create();
  const secrets = [a.privateId, b.privateId];
  const ha = { "X-Private-Id": a.privateId }, hb = { "X-Private-Id": b.privateId };

  const sb = await connectSocket(url, { privateId: b.privateId });
  const events: unknown[] = [];
  sb.onAny((event, payload) => events.push([event, payload]));
  const { body: { roomId } } = await call("POST", `/pair/users/${b.publicId}/connect`, ha);
  await call("POST", `/pair/users/${a.publicId}/connect`, {}, { privateId: b.privateId });
  await call("POST", `/pair/users/999-999/connect`, ha);
  expect((await call("POST", `/pair/rooms/${roomId}/messages`, ha, { body: "hello" })).status).toBe(201);
  expect((await call("POST", `/pair/rooms/${roomId}/messages`, {}, { body: "hi", privateId: b.privateId })).status).toBe(201);
  await call("POST", `/pair/rooms/${roomId}/messages`, ha, { body: "", privateId: a.privateId });
  await call("GET", `/pair/rooms/${roomId}/messages`, hb);
  await call("GET", `/pair/rooms/${roomId}/messages?limit=1`, {}, { privateId: a.privateId });
  await call("GET", `/pair/calls`, ha);
  await call("GET", `/pair/calls?limit=1`, {}, { privateId: b.privateId });
  await call("GET", `/rtc/ice-servers`, ha);
  await call("GET", `/pair/calls?cursor=x`, ha);
  await call("POST", `/pair/users/${b.publicId}/connect`, { "X-Private-Id": `${a.privateId}x` });
  const sa = await connectSocket(url, { privateId: a.privateId });
  answers.push(JSON.stringify(await emitWithAck(sa, "pair:signal", { roomId, data: { sdp: "x" } })));
  answers.push(JSON.stringify(await emitWithAck(sa, "pair:signal", { roomId, data: "bad" })));
  await collect(sb, "pair:signal").next(0);
  expect((await call("DELETE", `/pair/users/me`, {}, { privateId: a.privateId })).status).toBe(204);
  expect((await call("DELETE", `/pair/users/me`, hb)).status).toBe(204);
  expect((await call("GET", `/pair/calls`, ha)).status).toBe(401);
  sa.close();
  sb.close();
  await new Promise((r) => setTimeout(r, 300));

  const everything = answers.join("\n") + JSON.stringify(events);
  const logs = server.output();
  expect(logs).toContain("/pair/calls");
  for (const secret of secrets) {
    expect(everything).not.toContain(secret);
    expect(logs).not.toContain(secret);
  }
});
