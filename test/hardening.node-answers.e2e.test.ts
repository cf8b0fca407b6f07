import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { WebSocket } from "ws";
import { io } from "socket.io-client";
import { ProblemWebSocketServer } from "../src/http/node-answers";
import { connectSocket } from "./support/realtime";
import { registerUser, startTestServer, uniqueName, type TestServer } from "./support/test-server";

// Issue #13 item 6: the answers Node's HTTP server, engine.io and `ws` write themselves are
// problem+json too, seen on raw sockets against the real server.

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.close();
});

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Writes `request` on a new connection and reads `count` answers (by Content-Length), or
 * what came before the server closed the connection; `closed` says whether it did.
 */
function exchange(request: string, count = 1, port = Number(new URL(t.url).port)): Promise<{ answers: RawAnswer[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(request));
    let buffer = Buffer.alloc(0);
    const answers: RawAnswer[] = [];
    const finish = (closed: boolean) => {
      socket.destroy();
      resolve({ answers, closed });
    };
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const [statusLine, ...lines] = buffer.subarray(0, end).toString("latin1").split("\r\n");
        const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
        const length = Number(headers["content-length"] ?? 0);
        if (buffer.length < end + 4 + length) return;
        answers.push({ status: Number(statusLine.split(" ")[1]), headers, body: buffer.subarray(end + 4, end + 4 + length).toString() });
        buffer = buffer.subarray(end + 4 + length);
        if (answers.length === count) return finish(false);
      }
    });
    socket.on("close", () => finish(true));
    socket.on("error", reject);
  });
}

async function one(request: string, port?: number): Promise<RawAnswer> {
  const { answers } = await exchange(request, 1, port);
  if (answers.length !== 1) throw new Error(`expected an answer to ${JSON.stringify(request.slice(0, 80))}`);
  return answers[0];
}

function expectProblem(answer: RawAnswer, status: number): Record<string, unknown> {
  expect(answer.status).toBe(status);
  expect(answer.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(answer.body);
  expect(body).toMatchObject({ status, title: expect.any(String), type: expect.stringMatching(/^https:\/\//), detail: expect.any(String) });
  return body;
}

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const handshake = (path: string, headers: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${headers}\r\n`;

describe("what Node's HTTP server would answer itself", () => {
  it("answers an expectation it cannot meet with a 417 problem, and serves 100-continue", async () => {
    const body = expectProblem(await one("GET /health HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n"), 417);
    expect(body.detail).toMatch(/100-continue/);
    const { answers } = await exchange("POST /auth/login HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 2);
    expect(answers.map((a) => a.status)).toEqual([100, 400]);
  });

  it("answers an HTTP/1.1 request without Host with a 400 problem and closes; HTTP/1.0 needs none", async () => {
    const { answers, closed } = await exchange("GET /health HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n", 2);
    expect(answers).toHaveLength(1);
    expect(closed).toBe(true);
    expect(expectProblem(answers[0], 400).detail).toMatch(/Host/);
    expectProblem(await one("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n\r\n"), 400);
    expectProblem(await one("GET /health HTTP/1.1\r\nExpect: 200-ok\r\n\r\n"), 400);
    expectProblem(await one(handshake("/lobby_api", `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n`).replace("Host: x\r\n", "")), 400);
    const old = await one("GET /health HTTP/1.0\r\n\r\n");
    expect(old.status).toBe(200);
    expect(JSON.parse(old.body)).toEqual({ status: "ok" });
  });

  it("serves a request asking to upgrade to h2c as plain HTTP/1.1, body and keep-alive included", async () => {
    const h2c = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
    const { answers, closed } = await exchange(`GET /health HTTP/1.1\r\nHost: x\r\n${h2c}\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n`, 2);
    expect(closed).toBe(false);
    expect(answers.map((a) => [a.status, JSON.parse(a.body)])).toEqual([[200, { status: "ok" }], [200, { status: "ok" }]]);
    // Behind a request of the same connection still being answered (pipelined).
    const behind = await exchange(`GET /ready HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n${h2c}\r\nGET /no/such/route HTTP/1.1\r\nHost: x\r\n\r\n`, 3);
    expect(behind.answers.map((a) => a.status)).toEqual([200, 200, 404]);
    const body = JSON.stringify({ username: uniqueName("h2c"), password: "correct horse" });
    const registered = await one(`POST /auth/register HTTP/1.1\r\nHost: x\r\n${h2c}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(registered.status).toBe(201);
    expect(JSON.parse(registered.body).token).toEqual(expect.any(String));
    expectProblem(await one(`GET /no/such/route HTTP/1.1\r\nHost: x\r\n${h2c}\r\n`), 404);
    const socketIo = await one(`GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n${h2c}\r\n`);
    expect(socketIo.status).toBe(200);
    expect(socketIo.body).toMatch(/^0\{"sid":/);
  });

  it("serves h2c requests on one connection that the server's connection listeners see once", async () => {
    let seen = 0;
    const count = () => (seen += 1);
    t.server.httpServer.on("connection", count);
    try {
      const h2c = "Connection: Upgrade\r\nUpgrade: h2c\r\n";
      const { answers } = await exchange(`GET /health HTTP/1.1\r\nHost: x\r\n${h2c}\r\n`.repeat(3), 3);
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
      expect(seen).toBe(1);
    } finally {
      t.server.httpServer.off("connection", count);
    }
  });

  it("answers CONNECT, which it used to drop without a word, with a 501 problem", async () => {
    expectProblem(await one("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n"), 501);
  });

  it("keeps its problem answers to headers too large (431) and to unknown WebSocket paths (404)", async () => {
    expectProblem(await one(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`), 431);
    expectProblem(await one(handshake("/nowhere", `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n`)), 404);
  });
});

describe("what ws and engine.io would answer themselves", () => {
  for (const path of ["/lobby_api", "/socket.io/?EIO=4&transport=websocket"]) {
    it(`refuses a bad WebSocket handshake on ${path.split("?")[0]} with a problem`, async () => {
      const badKey = expectProblem(await one(handshake(path, "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n")), 400);
      expect(badKey.detail).toMatch(/Sec-WebSocket-Key/);
      const noVersion = await one(handshake(path, `Sec-WebSocket-Key: ${KEY}\r\n`));
      expectProblem(noVersion, 400);
      expect(noVersion.headers["sec-websocket-version"]).toBe("13, 8");
    });
  }

  it("refuses a POST handshake with a 405 on the lobby, and Socket.IO's with its own code kept", async () => {
    const lobby = await one(handshake("/lobby_api", `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n`).replace("GET", "POST"));
    expectProblem(lobby, 405);
    expect(lobby.headers.allow).toBe("GET");
    const socketIo = expectProblem(await one(handshake("/socket.io/?EIO=4&transport=websocket", `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n`).replace("GET", "POST")), 400);
    expect(socketIo).toMatchObject({ code: 2, message: "Bad handshake method" });
  });

  it("answers engine.io's refusals of a polling request as problems that keep its code and message", async () => {
    const unknownSid = expectProblem(await one("GET /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    expect(unknownSid).toMatchObject({ code: 1, message: "Session ID unknown" });
    const unknownTransport = expectProblem(await one("GET /socket.io/?EIO=4&transport=carrier-pigeon HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    expect(unknownTransport).toMatchObject({ code: 0, message: "Transport unknown" });
    const overWebSocket = expectProblem(await one(handshake("/socket.io/?EIO=4&transport=websocket&sid=nope", `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n`)), 400);
    expect(overWebSocket).toMatchObject({ code: 1, message: "Session ID unknown" });
  });

  it("closes a WebSocket whose Socket.IO handshake fails once open with a close frame, not HTTP in the stream", async () => {
    const socket = new WebSocket(`${t.url.replace("http", "ws")}/socket.io/?EIO=3&transport=websocket`);
    const frames: string[] = [];
    socket.on("message", (data: Buffer) => frames.push(data.toString()));
    const [code, reason] = await new Promise<[number, string]>((resolve, reject) => {
      socket.once("close", (closeCode: number, closeReason: Buffer) => resolve([closeCode, closeReason.toString()]));
      socket.once("error", reject);
    });
    expect(code).toBe(1002);
    expect(reason).toBe("Unsupported protocol version");
    expect(frames).toEqual([]);
  });

  it("gives the polling transport's bare 400 a body, and its 500 for another method is a 405", async () => {
    const open = await fetch(`${t.url}/socket.io/?EIO=4&transport=polling`);
    const sid = JSON.parse((await open.text()).slice(1)).sid as string;
    const poll = `${t.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    const put = await fetch(poll, { method: "PUT", body: "x" });
    expect(put.status).toBe(405);
    expect(put.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(put.headers.get("allow")).toMatch(/GET, POST/);
    // A poll waits for data; a second one at the same time is an overlap.
    const waiting = new AbortController();
    const first = fetch(poll, { signal: waiting.signal }).catch(() => null);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = await fetch(poll);
    expect(second.status).toBe(400);
    expect(second.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await second.json()).toMatchObject({ status: 400, detail: expect.stringMatching(/poll/) });
    waiting.abort();
    await first;
  });

  it("refuses a handshake once its WebSocket server is closing with a 503 problem", async () => {
    // What a lobby upgrade meets during a graceful shutdown, on a server of its own.
    const wss = new ProblemWebSocketServer({ noServer: true });
    wss.close();
    const server = http.createServer().on("upgrade", (req, socket, head) => wss.handleUpgrade(req, socket, head, () => {}));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const answer = await one(handshake("/", `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n`), (server.address() as AddressInfo).port);
      expectProblem(answer, 503);
      expect(answer.headers["retry-after"]).toBe("5");
    } finally {
      server.close();
    }
  });

  it("still lets real clients in: socket.io-client over polling then WebSocket, and ws on the lobby", async () => {
    const { token } = await registerUser(t);
    const viaPolling = io(t.url, { auth: { token }, transports: ["polling", "websocket"], reconnection: false, forceNew: true });
    await new Promise<void>((resolve, reject) => {
      viaPolling.once("connect_error", reject);
      viaPolling.io.engine.once("upgrade", () => resolve());
    });
    expect(viaPolling.io.engine.transport.name).toBe("websocket");
    viaPolling.close();
    (await connectSocket(t.url, { token })).close();
    const lobby = new WebSocket(`${t.url.replace("http", "ws")}/lobby_api`);
    await new Promise((resolve, reject) => lobby.once("open", resolve).once("error", reject));
    lobby.close();
  });
});
