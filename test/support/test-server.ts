import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";
import request from "supertest";
import { loadConfig, type Config, type DatabaseConfig } from "../../src/config";
import { openDatabase, type Database } from "../../src/db/data-source";
import { createLogger, type Logger } from "../../src/logger";
import { busOptions, createBus, type Bus } from "../../src/realtime/bus";
import { schemaOf } from "../../src/core/module";
import { MODULES } from "../../src/modules";
import { createServer, type ConveneServer } from "../../src/server";

declare const TEST_DATABASE: "pglite" | "postgres";
export const testDatabase = TEST_DATABASE;

export interface TestServer {
  url: string;
  config: Config;
  database: Database;
  server: ConveneServer;
  http: ReturnType<typeof request>;
  close(): Promise<void>;
}

/** A fresh, empty database for one test file; dropped again by `drop`. */
export interface FreshDatabase {
  config: DatabaseConfig;
  drop(): Promise<void>;
}

export async function freshDatabase(): Promise<FreshDatabase> {
  if (testDatabase === "pglite") return { config: { kind: "pglite", dataDir: "memory://", logging: false, connectTimeoutMS: 10_000 }, drop: async () => {} };
  const adminUrl = process.env.DATABASE_URL!;
  const name = `convene_test_${randomBytes(6).toString("hex")}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    config: { kind: "postgres", url: url.toString(), poolSize: 10, logging: false, connectTimeoutMS: 10_000 },
    async drop() {
      const client = new Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/** The environment every test server starts from: fast bcrypt, no rate limits, quiet logs. */
export function testEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    BCRYPT_ROUNDS: "4",
    RATE_LIMIT_AUTH_PER_MINUTE: "0",
    RATE_LIMIT_AUTH_PER_ACCOUNT: "0",
    RATE_LIMIT_POSTS_PER_MINUTE: "0",
    DRAIN_DELAY_SECONDS: "0",
    JWT_SECRET: randomBytes(32).toString("hex"),
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "convene-test-")),
    ...(testDatabase === "postgres" && process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
    REDIS_PREFIX: `convene-test-${randomBytes(6).toString("hex")}:`,
    ...overrides,
  };
}

/** Starts a real server on a fresh database (and its own bus) on a free loopback port; `log` replaces its stdout logger. */
export async function startTestServer(env: Record<string, string> = {}, existing?: FreshDatabase, log?: Logger): Promise<TestServer> {
  const fresh = existing ?? (await freshDatabase());
  const config = { ...loadConfig(testEnv(env), "/nonexistent/ormconfig.json"), database: fresh.config };
  log ??= createLogger(config.logLevel);
  const database = await openDatabase(config.database, schemaOf(MODULES));
  const bus: Bus = await createBus(busOptions(config), log);
  const server = await createServer({ config, dataSource: database.dataSource, bus, log }, MODULES);
  const address = await server.listen(0, "127.0.0.1");
  const url = `http://127.0.0.1:${address.port}`;
  return {
    url,
    config,
    database,
    server,
    http: request(url),
    async close() {
      await server.close();
      await bus.close();
      await database.close();
      if (!existing) await fresh.drop();
      fs.rmSync(config.dataDir, { recursive: true, force: true });
    },
  };
}

let counter = 0;
/** A username no other test in this file uses. */
export function uniqueName(prefix = "user"): string {
  counter += 1;
  return `${prefix}_${process.pid}_${counter}`.slice(0, 32);
}

export async function registerUser(t: TestServer, username = uniqueName(), password = "correct horse"): Promise<{ username: string; password: string; token: string }> {
  const res = await t.http.post("/auth/register").send({ username, password });
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { username, password, token: res.body.token };
}

export function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
}
