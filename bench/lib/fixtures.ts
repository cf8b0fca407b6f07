/** Fixtures: a fresh database, users with sessions inserted straight into it and their tokens signed as the server does, channels. */
import { randomBytes, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import bcrypt from "bcrypt";
import jwt from "jsonwebtoken";
import { Client as PgClient } from "pg";
import { log, elapsed, mapLimit } from "./util";
import { Cleanup } from "./cleanup";

export interface BenchUser {
  id: string;
  username: string;
  sessionId: string;
  token: string;
}

export async function createDatabase(adminUrl: string, name: string, cleanup: Cleanup): Promise<string> {
  const admin = new PgClient({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  cleanup.add(`drop database ${name}`, async () => {
    const dropper = new PgClient({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
    await dropper.connect();
    try {
      await dropper.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      log(`dropped database ${name}`);
    } finally {
      await dropper.end();
    }
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function createUsers(databaseUrl: string, count: number, secret: string, ttlSeconds: number): Promise<BenchUser[]> {
  const started = performance.now();
  // One bcrypt hash for everyone: the benchmark never logs in with a password.
  const passwordHash = await bcrypt.hash(randomBytes(12).toString("base64url"), 10);
  const users: BenchUser[] = Array.from({ length: count }, (_, i) => {
    const id = randomUUID();
    const sessionId = randomUUID();
    return {
      id,
      username: `bench_${i}`,
      sessionId,
      // Exactly what SessionService.issueToken signs.
      token: jwt.sign({}, secret, { algorithm: "HS256", subject: id, jwtid: sessionId, expiresIn: ttlSeconds }),
    };
  });
  const db = new PgClient({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  await db.connect();
  try {
    await db.query("BEGIN");
    const batch = 5000;
    for (let i = 0; i < users.length; i += batch) {
      const slice = users.slice(i, i + batch);
      await db.query(
        `INSERT INTO users (id, username, password_hash, user_type)
         SELECT id, username, $3, 'user' FROM unnest($1::uuid[], $2::varchar[]) AS t(id, username)`,
        [slice.map((u) => u.id), slice.map((u) => u.username), passwordHash],
      );
      await db.query(
        `INSERT INTO sessions (id, user_id, expires_at)
         SELECT id, user_id, now() + make_interval(secs => $3) FROM unnest($1::uuid[], $2::uuid[]) AS t(id, user_id)`,
        [slice.map((u) => u.sessionId), slice.map((u) => u.id), ttlSeconds],
      );
    }
    await db.query("COMMIT");
  } catch (error) {
    await db.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    await db.end();
  }
  log(`created ${count} users with sessions and tokens in ${elapsed(started)}`);
  return users;
}

export async function checkToken(url: string, user: BenchUser): Promise<void> {
  const response = await fetch(`${url}/users/me`, { headers: { authorization: `Bearer ${user.token}` }, signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET /users/me with a bench token answered ${response.status}: ${text.slice(0, 300)}`);
  const me = JSON.parse(text) as { username?: string };
  if (me.username !== user.username) throw new Error(`GET /users/me answered ${text.slice(0, 300)}, expected user ${user.username}`);
}

export interface Channel {
  id: string;
  name: string;
}

export async function createChannels(url: string, count: number, token: string, runId: string): Promise<Channel[]> {
  const started = performance.now();
  const channels = await mapLimit(Array.from({ length: count }, (_, i) => i), 8, async (i) => {
    const name = `bench-${runId}-${i}`;
    const response = await fetch(`${url}/chat/rooms`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    if (response.status !== 201) throw new Error(`POST /chat/rooms answered ${response.status}: ${text.slice(0, 300)}`);
    const channel = JSON.parse(text) as { id?: unknown; name?: unknown };
    if (typeof channel.id !== "string" || channel.name !== name) throw new Error(`POST /chat/rooms answered an unexpected body: ${text.slice(0, 300)}`);
    return { id: channel.id, name };
  });
  log(`created ${count} channels over REST in ${elapsed(started)}`);
  return channels;
}
