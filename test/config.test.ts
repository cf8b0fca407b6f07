import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConfigError, loadConfig } from "../src/config";
import { startProcess } from "./support/processes";

function writeOrmConfig(content: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "convene-orm-")), "ormconfig.json");
  fs.writeFileSync(file, content);
  return file;
}

describe("configuration", () => {
  it("defaults to PGlite on port 9000 with the admin account", () => {
    const config = loadConfig({}, "/nonexistent/ormconfig.json");
    expect(config.port).toBe(9000);
    expect(config.database.kind).toBe("pglite");
    expect(config.admin).toEqual({ username: "admin", password: "admin" });
    expect(config.rateLimitAuthPerMinute).toBe(20);
    expect(config.maxUploadBytes).toBe(2 * 1024 ** 3);
    expect(config.lobbyPingSeconds).toBe(30);
    expect(config).toMatchObject({ drainDelaySeconds: 5, requestTimeoutSeconds: 30, uploadIdleTimeoutSeconds: 30, maxIncompleteConnectionsPerAddress: 5000 });
  });

  it("reads ormconfig.json and lets the environment override it", () => {
    const file = writeOrmConfig(JSON.stringify({ url: "postgres://a@h/db1", poolSize: 7 }));
    expect(loadConfig({}, file).database).toMatchObject({ kind: "postgres", url: "postgres://a@h/db1", poolSize: 7 });
    expect(loadConfig({ DATABASE_URL: "postgres://b@h/db2", DATABASE_POOL_SIZE: "3" }, file).database).toMatchObject({ url: "postgres://b@h/db2", poolSize: 3 });
  });

  it.each([
    [{ PORT: "ninety" }, "PORT"],
    [{ PORT: "70000" }, "PORT"],
    [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL"],
    [{ REDIS_URL: "http://x" }, "REDIS_URL"],
    [{ JWT_SECRET: "short" }, "JWT_SECRET"],
    [{ RATE_LIMIT_AUTH_PER_MINUTE: "-1" }, "RATE_LIMIT_AUTH_PER_MINUTE"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ PROCESSES: "2" }, "PROCESSES"],
    [{ PORT: " " }, "PORT"],
    [{ PORT: "0x10" }, "PORT"],
    [{ BCRYPT_ROUNDS: "1e1" }, "BCRYPT_ROUNDS"],
    [{ RATE_LIMIT_AUTH_PER_MINUTE: " " }, "RATE_LIMIT_AUTH_PER_MINUTE"],
    [{ CORS_ORIGINS: " , " }, "CORS_ORIGINS"],
    [{ CORS_ORIGINS: "example.org" }, "CORS_ORIGINS"],
    [{ LOBBY_PING_SECONDS: "0" }, "LOBBY_PING_SECONDS"],
    [{ LOBBY_PING_SECONDS: "1.5" }, "LOBBY_PING_SECONDS"],
    [{ DRAIN_DELAY_SECONDS: "301" }, "DRAIN_DELAY_SECONDS"],
    [{ REQUEST_TIMEOUT_SECONDS: "0" }, "REQUEST_TIMEOUT_SECONDS"],
    [{ UPLOAD_IDLE_TIMEOUT_SECONDS: "0" }, "UPLOAD_IDLE_TIMEOUT_SECONDS"],
    [{ MAX_INCOMPLETE_CONNECTIONS_PER_ADDRESS: "-1" }, "MAX_INCOMPLETE_CONNECTIONS_PER_ADDRESS"],
  ])("refuses %j naming %s", (env, name) => {
    expect(() => loadConfig(env, "/nonexistent/ormconfig.json")).toThrow(ConfigError);
    expect(() => loadConfig(env, "/nonexistent/ormconfig.json")).toThrow(name);
  });

  it("refuses a broken ormconfig.json naming the field", () => {
    expect(() => loadConfig({}, writeOrmConfig("{ not json"))).toThrow(/ormconfig.json/);
    expect(() => loadConfig({}, writeOrmConfig(JSON.stringify({ poolSize: "ten" })))).toThrow(/poolSize/);
    expect(() => loadConfig({}, writeOrmConfig(JSON.stringify({ url: "mysql://x" })))).toThrow(/url/);
    // A file named explicitly must exist; the default one may be absent.
    expect(() => loadConfig({ ORMCONFIG: "/nonexistent/ormconfig.json" }, "/nonexistent/ormconfig.json")).toThrow(/ORMCONFIG/);
  });

  it("reads TRUST_PROXY 1 as one hop, true as every proxy", () => {
    const load = (TRUST_PROXY: string) => loadConfig({ TRUST_PROXY }, "/nonexistent/ormconfig.json").trustProxy;
    expect([load("1"), load("2"), load("true"), load("false")]).toEqual([1, 2, true, false]);
  });

  it("reads CORS_ORIGINS as a list of origins", () => {
    expect(loadConfig({ CORS_ORIGINS: "https://a.example, http://b.example:8080" }, "/nonexistent/ormconfig.json").corsOrigins).toEqual([
      "https://a.example",
      "http://b.example:8080",
    ]);
  });
});

describe("the server process", () => {
  it("stops at start with a message naming a bad setting", async () => {
    const run = startProcess({ PORT: "not-a-port" });
    expect(await run.exited).toBe(78);
    expect(run.output()).toMatch(/PORT/);
  });

  it("starts on PGlite, keeps data across restarts, and stops gracefully on SIGTERM", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "convene-main-"));
    const env = { PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, PGLITE_DATA_DIR: path.join(dataDir, "db"), LOG_LEVEL: "info", BCRYPT_ROUNDS: "4" };
    const start = async (extra: Record<string, string> = {}) => {
      const run = startProcess({ ...env, ...extra });
      return { run, url: await run.listening() };
    };
    const first = await start();
    expect(first.run.output()).toMatch(/default password/);
    const registered = await fetch(`${first.url}/auth/register`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "persisted", password: "persisted pw" }),
    });
    expect(registered.status).toBe(201);
    const { token } = (await registered.json()) as { token: string };
    first.run.child.kill("SIGTERM");
    expect(await first.run.exited).toBe(0);
    expect(first.run.output()).toMatch(/"msg":"stopped"/);

    // Setting ADMIN_PASSWORD after the first start changes nothing: the warning stays.
    const second = await start({ ADMIN_PASSWORD: "set after the first start" });
    expect(second.run.output()).toMatch(/default password/);
    // The user and the generated JWT secret survived the restart.
    const me = await fetch(`${second.url}/users/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(me.status).toBe(200);
    // A failed SSE request is logged, but its ?access_token= is not.
    const unknown = await fetch(`${second.url}/chat/rooms/00000000-0000-4000-8000-000000000000/subscribe?access_token=${token}`);
    expect(unknown.status).toBe(404);
    await new Promise((r) => setTimeout(r, 200));
    expect(second.run.output()).toMatch(/subscribe\?access_token=\[redacted\]/);
    expect(second.run.output()).not.toContain(token);
    second.run.child.kill("SIGINT");
    expect(await second.run.exited).toBe(0);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("finishes a request in flight when told to stop", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "convene-drain-"));
    const run = startProcess({ PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, PGLITE_DATA_DIR: "memory://", LOG_LEVEL: "info", BCRYPT_ROUNDS: "13" });
    const url = await run.listening();
    // bcrypt at cost 13 keeps the registration busy for a good fraction of a second.
    const pending = fetch(`${url}/auth/register`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "drained", password: "drained pw" }),
    });
    await new Promise((r) => setTimeout(r, 100));
    run.child.kill("SIGTERM");
    expect((await pending).status).toBe(201);
    expect(await run.exited).toBe(0);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});
