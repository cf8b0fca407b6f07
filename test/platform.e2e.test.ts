import net from "node:net";
import { Api } from "../src/http/api";
import { Authenticators } from "../src/http/auth-context";
import { createRegistry } from "../src/http/openapi";
import { freshDatabase, registerUser, startTestServer, testDatabase, type TestServer } from "./support/test-server";

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

  describe("the OpenAPI document, as tools need it", () => {
    type Operation = { operationId?: string; summary?: string; tags?: string[]; parameters?: { in: string; name: string }[]; responses: Record<string, { $ref?: string; content?: Record<string, unknown> }> };
    type Document = {
      servers?: { url: string }[];
      tags?: { name: string; description?: string }[];
      paths: Record<string, Record<string, Operation>>;
      components: { responses?: Record<string, unknown> };
    };
    let doc: Document;
    let operations: { method: string; path: string; op: Operation }[];
    beforeAll(async () => {
      doc = (await t.http.get("/openapi.json")).body as Document;
      operations = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ method, path, op })));
    });

    it("names every operation with a unique camelCase operationId", () => {
      expect(operations.length).toBeGreaterThan(40);
      const ids = operations.map(({ op }) => op.operationId);
      for (const id of ids) expect(id).toMatch(/^[a-z][a-zA-Z0-9]*$/);
      expect(new Set(ids).size).toBe(ids.length);
      expect(doc.paths["/rooms"].get.operationId).toBe("listRooms");
      expect(doc.paths["/chat/rooms/{id}/messages"].post.operationId).toBe("postChannelMessage");
    });

    it("says which server it describes", () => {
      // No PUBLIC_URL in tests: the relative "/" (wherever the document was fetched from).
      expect(doc.servers).toEqual([expect.objectContaining({ url: "/" })]);
    });

    it("lists each operation once, under one declared tag, with a summary and a 4xx answer", () => {
      const declared = new Map((doc.tags ?? []).map((tag) => [tag.name, tag.description]));
      for (const { method, path, op } of operations) {
        const where = `${method} ${path}`;
        // Swagger UI lists an operation once per tag: one tag, one listing.
        expect([where, op.tags?.length]).toEqual([where, 1]);
        expect([where, declared.get(op.tags![0])]).toEqual([where, expect.stringMatching(/\S/)]);
        expect([where, op.summary]).toEqual([where, expect.stringMatching(/\S/)]);
        expect([where, Object.keys(op.responses).some((status) => /^4\d\d$/.test(status))]).toEqual([where, true]);
      }
      // Paths that differ only in a parameter's name are the same route written twice.
      const shapes = Object.keys(doc.paths).map((path) => path.replace(/\{[^}]+\}/g, "{}"));
      expect(shapes.filter((shape, i) => shapes.indexOf(shape) !== i)).toEqual([]);
      expect(Object.keys(doc.paths["/users/{username}/rooms"])).toEqual(["get"]);
      expect(doc.paths["/users/{username}/rooms"].get.tags).toEqual(["Conference rooms"]);
    });

    it("refers only to components it has", () => {
      const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/(\w+)\/(\w+)"/g)].map((m) => [m[1], m[2]]);
      expect(refs.length).toBeGreaterThan(0);
      for (const [kind, name] of refs) expect((doc.components as Record<string, Record<string, unknown>>)[kind]).toHaveProperty([name]);
    });

    it("declares text/event-stream on the Server-Sent Events routes, which answer with it", async () => {
      // The SSE routes are the ones that take ?access_token= (EventSource cannot send headers).
      const sse = operations.filter(({ op }) => op.parameters?.some((p) => p.in === "query" && p.name === "access_token"));
      expect(sse.map(({ method, path }) => `${method} ${path}`).sort()).toEqual(["get /chat/rooms/{id}/subscribe", "get /chat/subscribe"]);
      const streaming = operations.filter(({ op }) => Object.values(op.responses).some((r) => r.content?.["text/event-stream"]));
      expect(streaming.map(({ path }) => path).sort()).toEqual(sse.map(({ path }) => path).sort());
      const user = await registerUser(t);
      const channel = (await t.http.post("/chat/rooms").set("Authorization", `Bearer ${user.token}`).send({ name: `openapi-${Date.now()}` })).body as { id: string };
      for (const { path, op } of sse) {
        const content = op.responses["200"].content!["text/event-stream"] as { schema: { type: string; description: string; example: string } };
        expect(content.schema).toMatchObject({ type: "string", description: expect.stringMatching(/event: message/), example: expect.stringMatching(/^retry: /) });
        const controller = new AbortController();
        const res = await fetch(`${t.url}${path.replace("{id}", channel.id)}?access_token=${user.token}`, { signal: controller.signal });
        controller.abort();
        expect([path, res.status, res.headers.get("content-type")]).toEqual([path, 200, expect.stringMatching(/^text\/event-stream/)]);
      }
    });

    it("refuses at start-up a route without a unique camelCase operationId, a route declared twice, an undeclared tag, or an SSE route without text/event-stream", () => {
      const api = new Api(createRegistry(), new Authenticators([]));
      const route = { method: "get", path: "/a", operationId: "getA", summary: "A", tag: "T", auth: "none", responses: { 200: { description: "ok" } } } as const;
      api.route(route, () => {});
      expect(() => api.route({ ...route, path: "/b" }, () => {})).toThrow(/getA.*used twice/);
      expect(() => api.route({ ...route, operationId: "get-b" }, () => {})).toThrow(/camelCase/);
      api.route({ ...route, path: "/a/:id", operationId: "getAnA" }, () => {});
      expect(() => api.route({ ...route, path: "/a/:name", operationId: "getAnotherA" }, () => {})).toThrow(/declared twice/);
      expect(() => api.route({ ...route, path: "/c", operationId: "followC", queryToken: true }, () => {})).toThrow(/text\/event-stream/);
      expect(() => api.tags()).toThrow(/not declared.*T/);
      api.tag("T", "Things");
      expect(api.tags()).toEqual([{ name: "T", description: "Things" }]);
    });
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
