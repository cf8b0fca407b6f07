import net from "node:net";
import { freshDatabase, startTestServer, testDatabase, type TestServer } from "./support/test-server";

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.close();
});

describe("platform", () => {
  it("GET /health and /ready answer ok", async () => {
    expect((await t.http.get("/health")).body).toEqual({ status: "ok" });
    expect((await t.http.get("/ready")).body).toEqual({ status: "ok" });
  });

  it("serves an OpenAPI 3.1 document of every route, and Swagger UI", async () => {
    const res = await t.http.get("/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    for (const path of ["/auth/register", "/auth/login", "/auth/logout", "/users", "/users/me", "/users/{username}", "/health", "/ready"])
      expect(res.body.paths).toHaveProperty([path]);
    const docs = await t.http.get("/docs/").redirects(1);
    expect(docs.status).toBe(200);
    expect(docs.text).toMatch(/swagger/i);
  });

  it("serves Prometheus metrics", async () => {
    const res = await t.http.get("/metrics");
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/process_resident_memory_bytes/);
    expect(res.text).toMatch(/nodejs_eventloop_lag_p99_seconds/);
    expect(res.text).toMatch(/convene_socketio_clients 0/);
  });

  it("answers an unknown route with a 404 problem", async () => {
    const res = await t.http.get("/no/such/route");
    expect(res.status).toBe(404);
    expect(res.headers["content-type"]).toMatch(/application\/problem\+json/);
  });

  it("answers requests HTTP itself refuses, and unknown upgrades, with problem+json too", async () => {
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(new URL(t.url).port), "127.0.0.1", () => socket.write(request));
        let answer = "";
        socket.on("data", (chunk) => (answer += chunk.toString()));
        socket.on("end", () => resolve(answer));
        socket.on("error", reject);
      });
    const tooLarge = await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(tooLarge).toMatch(/^HTTP\/1.1 431 /);
    expect(tooLarge).toMatch(/Content-Type: application\/problem\+json/);
    expect(JSON.parse(tooLarge.slice(tooLarge.indexOf("\r\n\r\n") + 4))).toMatchObject({ status: 431 });
    const upgrade = await raw("GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    expect(upgrade).toMatch(/^HTTP\/1.1 404 /);
    expect(JSON.parse(upgrade.slice(upgrade.indexOf("\r\n\r\n") + 4))).toMatchObject({ status: 404 });
    const garbage = await raw("NOT HTTP AT ALL\r\n\r\n");
    expect(garbage).toMatch(/^HTTP\/1.1 400 /);
    expect(JSON.parse(garbage.slice(garbage.indexOf("\r\n\r\n") + 4))).toMatchObject({ status: 400 });
  });

  it("sets security headers, CORS and a request id", async () => {
    const res = await t.http.get("/health").set("Origin", "https://example.org").set("X-Request-Id", "abc-123");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["access-control-allow-origin"]).toBe("https://example.org");
    expect(res.headers["x-request-id"]).toBe("abc-123");
  });

  it("/ready answers 503 when the database is unreachable", async () => {
    const other = await startTestServer();
    await other.database.dataSource.destroy();
    const res = await other.http.get("/ready");
    expect(res.status).toBe(503);
    expect(res.headers["content-type"]).toMatch(/application\/problem\+json/);
    await other.close();
  });

  (testDatabase === "postgres" ? it : it.skip)("answers 503 with Retry-After, not 500, while the database is gone", async () => {
    const database = await freshDatabase();
    const other = await startTestServer({}, database);
    try {
      await database.drop(); // WITH (FORCE): the server's connections are cut too
      for (const res of [await other.http.get("/users"), await other.http.post("/auth/login").send({ username: "admin", password: "admin" })]) {
        expect(res.status).toBe(503);
        expect(res.headers["content-type"]).toMatch(/application\/problem\+json/);
        expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
      }
    } finally {
      await other.close().catch(() => undefined);
    }
  });
});
