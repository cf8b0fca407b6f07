/**
 * npm run bench:rooms [-- --users 1000 --capacity 50 --processes 2 --redis]
 *
 * On a fresh Postgres database: one host creates a room of `capacity` seats, then all
 * `users` users, the host one of them, POST /rooms/:guid/join at once. The host's join
 * changes nothing (200), so exactly `capacity` answers are 200 (the host and capacity − 1
 * new participants) and `users − capacity` are 409; the run fails otherwise, or if the
 * room ends with any other number of participants. Reports the time until every answer
 * came, p50/p99 join latency, and the same concurrency of GET /health as a reference
 * measured in the same run. The last line is one JSON object.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { percentiles, round } from "./chat-shared";
import { Cleanup } from "./lib/cleanup";
import { checkToken, createDatabase, createUsers } from "./lib/fixtures";
import { startServer } from "./lib/server";
import { assertLoopback, freePort, log } from "./lib/util";

async function timed(request: () => Promise<Response>): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const response = await request();
  await response.arrayBuffer();
  return { status: response.status, ms: performance.now() - started };
}

async function main(cleanup: Cleanup): Promise<void> {
  const { values } = parseArgs({
    options: {
      users: { type: "string", default: "1000" },
      capacity: { type: "string", default: "50" },
      processes: { type: "string" },
      redis: { type: "boolean", default: false },
    },
  });
  const users = Number(values.users);
  const capacity = Number(values.capacity);
  if (!(users >= 2 && capacity >= 1 && capacity <= 1000 && capacity <= users)) throw new Error("need 2 ≤ users, 1 ≤ capacity ≤ min(users, 1000)");
  const adminUrl = process.env.BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
  const redisUrl = process.env.BENCH_REDIS_URL || "redis://127.0.0.1:6379";
  assertLoopback(adminUrl, "BENCH_DATABASE_URL");
  if (values.redis) assertLoopback(redisUrl, "BENCH_REDIS_URL");

  const runId = randomBytes(4).toString("hex");
  const secret = randomBytes(36).toString("base64url");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "convene-bench-rooms-"));
  cleanup.add("remove the temporary directory", async () => fs.rmSync(tmp, { recursive: true, force: true }));
  const databaseUrl = await createDatabase(adminUrl, `convene_bench_rooms_${runId}`, cleanup);
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ["REDIS_URL", "PROCESSES", "PUBLIC_URL", "DATABASE_POOL_SIZE", "PGLITE_DATA_DIR", "JWT_TTL_SECONDS"]) delete env[name];
  const ormConfig = path.join(tmp, "ormconfig.json");
  fs.writeFileSync(ormConfig, "{}\n");
  Object.assign(env, {
    NODE_ENV: "production", PORT: String(port), HOST: "127.0.0.1", DATABASE_URL: databaseUrl, JWT_SECRET: secret, LOG_LEVEL: "warn",
    RATE_LIMIT_AUTH_PER_MINUTE: "0", RATE_LIMIT_POSTS_PER_MINUTE: "0", DATA_DIR: path.join(tmp, "data"), UPLOADS_DIR: path.join(tmp, "uploads"),
    ORMCONFIG: ormConfig, SHUTDOWN_GRACE_SECONDS: "5", REDIS_PREFIX: `convene-bench-rooms-${runId}:`,
  });
  if (values.redis) env.REDIS_URL = redisUrl;
  if (values.processes) env.PROCESSES = values.processes;
  const server = await startServer({ nodeArgs: [], redisUrl: values.redis ? redisUrl : null }, env, port, cleanup);
  const people = await createUsers(databaseUrl, users, secret, 86_400);
  await checkToken(server.url, people[0]);
  const auth = (token: string) => ({ authorization: `Bearer ${token}`, "content-type": "application/json" });

  const created = await fetch(`${server.url}/rooms`, { method: "POST", headers: auth(people[0].token), body: JSON.stringify({ name: `bench-${runId}`, capacity }) });
  const room = (await created.json()) as { guid: string };
  if (created.status !== 201) throw new Error(`POST /rooms answered ${created.status}`);

  // The reference: the same number of simultaneous requests to the cheapest route.
  const health = await Promise.all(people.map(() => timed(() => fetch(`${server.url}/health`))));
  const healthStats = percentiles(Float64Array.from(health.map((r) => r.ms)));

  const started = performance.now();
  const joins = await Promise.all(people.map((u) => timed(() => fetch(`${server.url}/rooms/${room.guid}/join`, { method: "POST", headers: auth(u.token) }))));
  const settleMs = performance.now() - started;
  server.assertAlive();
  const ok = joins.filter((r) => r.status === 200).length;
  const full = joins.filter((r) => r.status === 409).length;
  const final = (await (await fetch(`${server.url}/rooms/${room.guid}`)).json()) as { participants: string[] };
  const joinStats = percentiles(Float64Array.from(joins.map((r) => r.ms)));
  const exact = ok === capacity && full === users - capacity && final.participants.length === capacity;
  log(`${users} simultaneous joins (host included) to a ${capacity}-seat room: ${ok} × 200, ${full} × 409, ${final.participants.length} participants${exact ? "" : " — NOT EXACT"}`);
  log(`settled in ${round(settleMs)} ms; join p50 ${joinStats.p50} ms, p99 ${joinStats.p99} ms; GET /health at the same concurrency p50 ${healthStats.p50} ms, p99 ${healthStats.p99} ms`);
  const result = {
    bench: "rooms", users, capacity, processes: values.processes ? Number(values.processes) : 1, redis: values.redis,
    joined: ok, full, other: users - ok - full, participants: final.participants.length, exact,
    settle_ms: round(settleMs), join_ms: joinStats, health_ms: healthStats,
    join_p50_over_health_p50: joinStats.p50 && healthStats.p50 ? round(joinStats.p50 / healthStats.p50) : null,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (!exact) process.exitCode = 1;
}

const cleanup = new Cleanup();
process.once("SIGINT", () => void cleanup.run().then(() => process.exit(130)));
main(cleanup)
  .catch((error: unknown) => {
    log(`failed: ${error instanceof Error ? error.stack : String(error)}`);
    process.exitCode = 1;
  })
  .finally(() => cleanup.run());
