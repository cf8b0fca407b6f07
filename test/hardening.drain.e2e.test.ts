import http from "node:http";
import { io, type Socket } from "socket.io-client";
import WebSocket from "ws";
import { startProcess, type ServerProcess } from "./support/processes";
import { freshDatabase, testDatabase, testEnv, type FreshDatabase } from "./support/test-server";
import { get, postJson, rawConnect, refusesConnections, slowLogin, statusOf } from "./support/drain";

/**
 * Graceful drain (issue #13, item 3): the real server as its own process, sent SIGTERM.
 * /ready answers 503 at once, also on a kept-alive connection; the listener keeps
 * accepting for DRAIN_DELAY_SECONDS; what is in flight finishes; event streams get a
 * `retry:` hint and end, Socket.IO clients `server:shutdown`, the lobby WebSocket 1001;
 * and a request pipelined behind an event stream does not hold the shutdown to its grace.
 */
const DELAY_S = 2;
const GRACE_S = 30;

let fresh: FreshDatabase | null = null;
const started: ServerProcess[] = [];

async function start(env: Record<string, string>): Promise<{ server: ServerProcess; url: string }> {
  const database: Record<string, string> =
    testDatabase === "postgres" ? { DATABASE_URL: (fresh ??= await freshDatabase()).config.kind === "postgres" ? (fresh.config as { url: string }).url : "" } : { PGLITE_DATA_DIR: "memory://" };
  // info: the helper waits for the "listening" line.
  const server = startProcess(testEnv({ ...database, LOG_LEVEL: "info", PORT: "0", HOST: "127.0.0.1", SHUTDOWN_GRACE_SECONDS: String(GRACE_S), ...env }));
  started.push(server);
  return { server, url: await server.listening(60_000) };
}

afterAll(async () => {
  await Promise.all(started.map((s) => s.stop("SIGKILL")));
  await fresh?.drop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function register(url: string, username: string) {
  const res = await postJson(`${url}/auth/register`, { username, password: "drain password" });
  expect(res.status).toBe(201);
  return { username, password: "drain password", token: res.body.token as string };
}

test("on SIGTERM: /ready 503 on a kept-alive connection, new connections served during the delay, in-flight requests finish, real-time clients are told and closed", async () => {
  const { server, url } = await start({ DRAIN_DELAY_SECONDS: String(DELAY_S) });
  const user = await register(url, `drain_${process.pid}`);

  let signalled = 0;

  // Real-time clients of every kind.
  const sse = await rawConnect(url);
  sse.socket.write(`GET /chat/subscribe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.token}\r\nAccept: text/event-stream\r\n\r\n`);
  const socket: Socket = io(url, { auth: { token: user.token }, transports: ["websocket"], reconnection: false, forceNew: true });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("connect_error", reject));
  const shutdownEvent = new Promise<unknown>((resolve) => socket.once("server:shutdown" as never, resolve as never));
  const disconnected = new Promise<string>((resolve) => socket.once("disconnect", resolve));
  const lobby = new WebSocket(`${url.replace("http", "ws")}/lobby_api`);
  await new Promise((resolve, reject) => lobby.once("open", resolve).once("error", reject));
  const lobbyClosed = new Promise<number>((resolve) => lobby.once("close", resolve));

  // Logins sent on fresh connections just before the signal, and a slow one still arriving after the delay.
  const burst = Array.from({ length: 60 }, () => postJson(`${url}/auth/login`, { username: user.username, password: user.password }).catch((e) => ({ status: `${Date.now() - signalled} ${e.cause?.message}`, body: null })));
  const slow = await slowLogin(url, { username: user.username, password: user.password }, (DELAY_S + 1) * 1000);
  // A kept-alive connection, as a load balancer's health checks use (opened last: idle ones close after 5 s).
  const keptAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
  expect((await get(`${url}/ready`, keptAlive))).toMatchObject({ status: 200, connection: "keep-alive" });
  signalled = Date.now();
  server.child.kill("SIGTERM");

  // Once the server has the signal, /ready answers 503 on the kept-alive connection, and closes it.
  while (!server.output().includes('"msg":"draining"')) await sleep(10);
  const ready = await get(`${url}/ready`, keptAlive);
  expect(ready).toMatchObject({ status: 503, reused: true, connection: "close" });
  expect(JSON.parse(ready.body)).toMatchObject({ status: 503, detail: expect.stringMatching(/shutting down/) });
  expect(Date.now() - signalled).toBeLessThan(DELAY_S * 1000);

  // New connections are still accepted and served during the delay, each answer with Connection: close.
  const during = await get(`${url}/health`, false);
  expect(during).toMatchObject({ status: 200, connection: "close" });
  expect(Date.now() - signalled).toBeLessThan(DELAY_S * 1000);

  // Every login of the burst was answered.
  const answers = await Promise.all(burst);
  expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));

  // Event streams get a retry: hint and end; Socket.IO clients are told; the lobby closes 1001.
  const streamed = await sse.closed;
  expect(streamed).toMatch(/retry: 2000\n\n/);
  expect(await shutdownEvent).toEqual({ reason: "shutdown", reconnect_after_ms: 2000 });
  expect(await disconnected).toBe("transport close");
  expect(await lobbyClosed).toBe(1001);
  expect(Date.now() - signalled).toBeGreaterThanOrEqual(DELAY_S * 1000 - 100);

  // After the delay the port closes, yet the slow login in flight finishes.
  expect(await refusesConnections(url, 5000)).toBe(true);
  await slow.sent;
  const answer = await slow.answer;
  expect(statusOf(answer)).toBe(200);
  expect(answer).toMatch(/\r\nconnection: close/i);

  expect(await server.exited).toBe(0);
  expect(server.output()).toMatch(/"msg":"draining"/);
  keptAlive.destroy();
  socket.close();
});

test("a request pipelined behind an event stream does not hold the shutdown to its grace period", async () => {
  const { server, url } = await start({ DRAIN_DELAY_SECONDS: "0" });
  const user = await register(url, `pipe_${process.pid}`);
  const stream = `GET /chat/subscribe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.token}\r\nAccept: text/event-stream\r\n\r\n`;
  const login = JSON.stringify({ username: user.username, password: user.password });
  const pipelined = `POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${login.length}\r\n\r\n${login}`;

  // One such connection the client gave up on before the signal: its queued login's response never ends on its own.
  const gone = await rawConnect(url);
  gone.socket.write(stream + pipelined);
  // And one still open at the signal.
  const open = await rawConnect(url);
  open.socket.write(stream + pipelined);
  await sleep(500);
  expect(gone.received()).toMatch(/text\/event-stream/);
  gone.socket.destroy();
  await sleep(200);

  const signalled = Date.now();
  server.child.kill("SIGTERM");
  expect(await server.exited).toBe(0);
  // Well before the grace: nothing in flight was left counted.
  expect(Date.now() - signalled).toBeLessThan((GRACE_S * 1000) / 3);
  const answered = await open.closed;
  expect(answered).toMatch(/retry: 2000\n\n/);
  // The login queued behind the stream was answered once the stream ended.
  expect(answered).toMatch(/HTTP\/1\.1 200 OK[^]*"token"/);
});

test("Ctrl+C (SIGINT) stops without the drain delay: nobody balances load in front of a terminal", async () => {
  const { server, url } = await start({ DRAIN_DELAY_SECONDS: "60" });
  expect((await get(`${url}/health`, false)).status).toBe(200);
  const signalled = Date.now();
  server.child.kill("SIGINT");
  expect(await server.exited).toBe(0);
  // Far from the 60 s delay a SIGTERM would wait.
  expect(Date.now() - signalled).toBeLessThan(20_000);
});
