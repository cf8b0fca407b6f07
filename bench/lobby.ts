/**
 * Lobby fan-out benchmark: `npm run bench:lobby [-- options]`. See docs/benchmarks.md.
 *
 * Starts the compiled server (PGlite by default) as a child process, opens N `/lobby_api`
 * subscribers spread over subscriber processes (bench/lobby-worker.ts), each of which logs
 * in and sends `subscribe_tables`; then one admin connection adds, updates and removes
 * tables at a steady rate. Measures change-to-event latency (admin's send time to each
 * subscriber's arrival time, one monotonic clock), missing and out-of-order events per
 * subscriber by the lobby version each event carries, server CPU and memory per
 * subscriber. Then the same run against a plain `ws` broadcast server
 * (bench/lobby-reference.ts) as the reference, and the ratios.
 *
 * Progress goes to stderr; the summary to stdout, its last line one JSON object.
 * Exit code: 0 all good; 1 an event was missing or out of order, a change failed or a
 * subscriber could not connect; 2 the benchmark itself failed.
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { concatSamples, errorMessage, percentiles, round, type Percentiles } from "./chat-shared";
import { Cleanup, terminate, waitForExit } from "./lib/cleanup";
import { createDatabase } from "./lib/fixtures";
import { HeapProbe, serverEnvironment, startReferenceServer, startServer } from "./lib/server";
import { assertLoopback, CpuMeter, freePort, log, postgresPids, sleep, treeCpuSeconds, treeRssBytes, UsageError, waitFor } from "./lib/util";
import { EVENT_TYPES, monotonicMs, type FromLobbyWorker, type Login, type LobbyWorkerResult, type ToLobbyWorker } from "./lobby-shared";

interface Options {
  clients: number;
  rate: number;
  duration: number;
  workers: number;
  concurrency: number;
  drainSeconds: number;
  tables: number;
  users: number;
  postgres: boolean;
  redis: boolean;
  processes: number | null;
  reference: boolean;
  heap: boolean;
  serverEnv: Record<string, string>;
  adminDatabaseUrl: string;
  redisUrl: string;
}

const USAGE = `usage: npm run bench:lobby -- [options]
  --clients N              subscribers (default 10000)
  --rate R                 table changes per second by the admin, a mix of add/update/remove (default 20)
  --duration S             length of the changing phase in seconds (default 30)
  --tables T               tables made before the subscribers come (default 20); the mix keeps T/2..2T
  --users U                accounts the subscribers log in as, round robin (default 100)
  --workers W              subscriber processes (default ceil(N / 2500), at most 4)
  --connect-concurrency K  logins in flight at once, all workers together (default 200)
  --drain S                how long to wait, after the last change, for its answer and every event (default 600:
                           a server that cannot keep up is measured until it has caught up)
  --no-reference           skip the plain ws broadcast server run
  --no-heap                do not start the servers with --inspect (no heap per subscriber)
  --postgres               Postgres (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres) instead of PGlite
  --redis                  give the server REDIS_URL (BENCH_REDIS_URL or redis://127.0.0.1:6379)
  --processes P            give the server PROCESSES=P (needs --postgres --redis)
  --server-env KEY=VALUE   extra environment for the server, repeatable`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      clients: { type: "string" },
      rate: { type: "string" },
      duration: { type: "string" },
      tables: { type: "string" },
      users: { type: "string" },
      workers: { type: "string" },
      "connect-concurrency": { type: "string" },
      drain: { type: "string" },
      "no-reference": { type: "boolean", default: false },
      "no-heap": { type: "boolean", default: false },
      postgres: { type: "boolean", default: false },
      redis: { type: "boolean", default: false },
      processes: { type: "string" },
      "server-env": { type: "string", multiple: true },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const number = (name: string, raw: string | undefined, fallback: number, min: number, integer = true): number => {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) throw new UsageError(`--${name} must be ${integer ? "an integer" : "a number"} >= ${min} (got ${raw})`);
    return value;
  };
  const clients = number("clients", values.clients, 10_000, 1);
  const workers = number("workers", values.workers, Math.min(4, Math.ceil(clients / 2500)), 1);
  if (Math.ceil(clients / workers) > 19_000) throw new UsageError("more than 19,000 sockets per worker exceed the open-file limit here; raise --workers");
  const processes = values.processes === undefined ? null : number("processes", values.processes, 1, 1);
  if (processes !== null && processes > 1 && !(values.redis && values.postgres)) throw new UsageError("--processes > 1 needs --postgres and --redis");
  const serverEnv: Record<string, string> = {};
  for (const pair of values["server-env"] ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new UsageError(`--server-env takes KEY=VALUE (got ${pair})`);
    serverEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    clients,
    rate: number("rate", values.rate, 20, 0.1, false),
    duration: number("duration", values.duration, 30, 1, false),
    tables: number("tables", values.tables, 20, 2),
    users: number("users", values.users, Math.min(100, clients), 1),
    workers,
    concurrency: number("connect-concurrency", values["connect-concurrency"], 200, 1),
    drainSeconds: number("drain", values.drain, 600, 1, false),
    postgres: values.postgres === true,
    redis: values.redis === true,
    processes,
    reference: values["no-reference"] !== true,
    heap: values["no-heap"] !== true,
    serverEnv,
    adminDatabaseUrl: process.env.BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres",
    redisUrl: process.env.BENCH_REDIS_URL || "redis://127.0.0.1:6379",
  };
}

// ---------------------------------------------------------------------------------------
// The servers under test

interface Target {
  name: "convene" | "ws";
  pid: number;
  wsUrl: string;
  heap: HeapProbe | null;
  admin: Login;
  logins: Login[];
}

async function startConvene(options: Options, cleanup: Cleanup): Promise<Target> {
  const runId = randomBytes(4).toString("hex");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "convene-bench-lobby-"));
  cleanup.add("remove the temporary directory", async () => fs.rmSync(tmp, { recursive: true, force: true }));
  if (options.postgres) assertLoopback(options.adminDatabaseUrl, "BENCH_DATABASE_URL");
  if (options.redis) assertLoopback(options.redisUrl, "BENCH_REDIS_URL");
  const databaseUrl = options.postgres ? await createDatabase(options.adminDatabaseUrl, `convene_bench_lobby_${runId}`, cleanup) : "";
  const port = await freePort();
  const admin = { username: "admin", password: randomBytes(12).toString("base64url") };
  const env = serverEnvironment({
    tmp,
    port,
    databaseUrl,
    secret: randomBytes(36).toString("base64url"),
    runId,
    redisUrl: options.redis ? options.redisUrl : null,
    processes: options.processes,
    // Logins check a bcrypt hash each: at the default cost 10,000 of them would measure bcrypt.
    extra: { BCRYPT_ROUNDS: "4", ADMIN_USERNAME: admin.username, ADMIN_PASSWORD: admin.password, ...options.serverEnv },
  });
  if (!options.postgres) {
    delete env.DATABASE_URL;
    env.PGLITE_DATA_DIR = path.join(tmp, "db");
  }
  const inspectorPort = options.heap && (options.processes ?? 1) === 1 ? await freePort() : null;
  const nodeArgs = inspectorPort === null ? [] : [`--inspect=127.0.0.1:${inspectorPort}`];
  const server = await startServer({ nodeArgs, redisUrl: options.redis ? options.redisUrl : null }, env, port, cleanup);
  const users: Login[] = [];
  for (let i = 0; i < options.users; i++) {
    const user = { username: `lobby_bench_${i}`, password: randomBytes(9).toString("base64url") };
    const response = await fetch(`${server.url}/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(user) });
    await response.arrayBuffer();
    if (response.status !== 201) throw new Error(`POST /auth/register answered ${response.status}`);
    users.push(user);
  }
  log(`registered ${users.length} accounts for the subscribers`);
  return {
    name: "convene",
    pid: server.pid,
    wsUrl: `ws://127.0.0.1:${port}/lobby_api`,
    heap: inspectorPort === null ? null : new HeapProbe(inspectorPort),
    admin,
    logins: Array.from({ length: options.clients }, (_, i) => users[i % users.length]),
  };
}

async function startReference(options: Options, cleanup: Cleanup): Promise<Target> {
  const inspectorPort = options.heap ? await freePort() : null;
  const { pid, port } = await startReferenceServer("lobby-reference.js", inspectorPort, cleanup);
  log(`reference ws server pid ${pid} on port ${port}`);
  const login = { username: "user", password: "x" };
  return {
    name: "ws",
    pid,
    wsUrl: `ws://127.0.0.1:${port}/lobby_api`,
    heap: inspectorPort === null ? null : new HeapProbe(inspectorPort),
    admin: { username: "admin", password: "x" },
    logins: Array.from({ length: options.clients }, () => login),
  };
}

// ---------------------------------------------------------------------------------------
// The admin: one connection, not subscribed, so each change's event comes back as its answer

class Admin {
  /** Send time of every change sent and not answered yet, in order (answers come in order). */
  private readonly pending: number[] = [];
  private readonly ids: number[] = [];
  private nextId = 1;
  private nextAnswer: (() => void) | null = null;
  /** Send time by version, of the measured changes. */
  readonly sendTimes = new Map<number, number>();
  measuring = false;
  sent = 0;
  failed = 0;
  failures: Record<string, number> = {};
  lastVersion = 0;

  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const answer = JSON.parse(data.toString()) as { $type: string; version?: number };
      const sentAt = this.pending.shift();
      if (EVENT_TYPES.has(answer.$type) && typeof answer.version === "number" && sentAt !== undefined) {
        this.lastVersion = Math.max(this.lastVersion, answer.version);
        if (this.measuring) this.sendTimes.set(answer.version, sentAt);
      } else {
        this.failed++;
        this.failures[answer.$type] = (this.failures[answer.$type] ?? 0) + 1;
      }
      this.nextAnswer?.();
    });
  }

  static async open(url: string, login: Login): Promise<Admin> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const answer = new Promise<string>((resolve) => ws.once("message", (data) => resolve(data.toString())));
    ws.send(JSON.stringify({ $type: "login", ...login }));
    const reply = JSON.parse(await answer) as { $type: string; user_type?: string };
    if (reply.$type !== "login_successful" || reply.user_type !== "admin") throw new Error(`admin login: ${JSON.stringify(reply)}`);
    return new Admin(ws);
  }

  get unanswered(): number {
    return this.pending.length;
  }

  /** One change from the mix; the table count stays between `tables / 2` and `2 × tables`. */
  change(tables: number): void {
    const pick = (): number => this.ids[Math.floor(Math.random() * this.ids.length)];
    const roll = Math.random();
    let message: object;
    if (this.ids.length <= tables / 2 || (this.ids.length < tables * 2 && roll < 0.35)) {
      const id = this.nextId++;
      message = { $type: "add_table", after_id: this.ids.length === 0 || roll < 0.1 ? -1 : pick(), table: { id, name: `table ${id}`, participants: 0 } };
      this.ids.push(id);
    } else if (roll < 0.7) {
      const id = pick();
      message = { $type: "update_table", table: { id, name: `table ${id}`, participants: Math.floor(Math.random() * 9) } };
    } else {
      const index = Math.floor(Math.random() * this.ids.length);
      message = { $type: "remove_table", id: this.ids[index] };
      this.ids[index] = this.ids[this.ids.length - 1];
      this.ids.pop();
    }
    this.pending.push(monotonicMs());
    this.ws.send(JSON.stringify(message));
    this.sent++;
  }

  async settle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.length > 0 && Date.now() < deadline) await new Promise<void>((resolve) => ((this.nextAnswer = resolve), setTimeout(resolve, 100)));
  }

  /** Changes at `rate` per second for `seconds`, on schedule (not waiting for answers). */
  async run(rate: number, seconds: number, tables: number, check: () => void): Promise<number> {
    const total = Math.max(1, Math.round(rate * seconds));
    const started = monotonicMs();
    let done = 0;
    while (done < total) {
      check();
      const due = Math.min(total, Math.floor(((monotonicMs() - started) / 1000) * rate) + 1);
      for (; done < due; done++) this.change(tables);
      if (done < total) await sleep(Math.max(1, (done / rate) * 1000 - (monotonicMs() - started)));
    }
    return (monotonicMs() - started) / 1000;
  }

  close(): void {
    this.ws.terminate();
  }
}

// ---------------------------------------------------------------------------------------
// Subscriber processes

class SubscriberProcess {
  progress = { subscribed: 0, failed: 0, events: 0 };
  ready: Extract<FromLobbyWorker, { type: "ready" }> | null = null;
  result: LobbyWorkerResult | null = null;
  fatal: string | null = null;
  exited = false;

  constructor(
    readonly id: number,
    readonly child: ChildProcess,
  ) {
    child.on("message", (raw: unknown) => {
      const message = raw as FromLobbyWorker;
      if (message.type === "progress") this.progress = message;
      else if (message.type === "ready") this.ready = message;
      else if (message.type === "result") this.result = message;
      else if (message.type === "fatal") this.fatal = message.error;
    });
    child.on("exit", () => (this.exited = true));
  }

  send(message: ToLobbyWorker): void {
    if (this.child.connected) this.child.send(message);
  }

  assertAlive(): void {
    if (this.fatal) throw new Error(`subscriber process ${this.id} failed: ${this.fatal}`);
    if (this.exited && !this.result) throw new Error(`subscriber process ${this.id} exited unexpectedly`);
  }
}

// ---------------------------------------------------------------------------------------
// One measured run against a target

async function memoryNow(target: Target): Promise<{ heap: number | null; rss: number | null }> {
  const usage = target.heap ? await target.heap.afterGc() : null;
  return { heap: usage?.heapUsed ?? null, rss: treeRssBytes(target.pid) };
}

async function measure(target: Target, options: Options, cleanup: Cleanup): Promise<Record<string, unknown> & { ok: boolean }> {
  const assertTarget = (): void => {
    try {
      process.kill(target.pid, 0);
    } catch {
      throw new Error(`the ${target.name} server (pid ${target.pid}) is gone`);
    }
  };
  const admin = await Admin.open(target.wsUrl, target.admin);
  cleanup.add(`close the ${target.name} admin`, async () => admin.close());
  for (let i = 0; i < options.tables; i++) admin.change(options.tables * 2);
  await admin.settle(60_000);
  const setupVersion = admin.lastVersion;
  const before = await memoryNow(target);

  const workers = Array.from({ length: options.workers }, (_, id) => {
    const child = fork(path.join(__dirname, "lobby-worker.js"), [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const worker = new SubscriberProcess(id, child);
    cleanup.add(`stop subscriber process ${id} (${target.name})`, async () => {
      worker.send({ type: "stop" });
      if (!(await waitForExit(child, 5000))) await terminate(child, `subscriber process ${id}`, 2000);
    });
    return worker;
  });
  const checkAll = (): void => {
    assertTarget();
    for (const w of workers) w.assertAlive();
  };
  const sum = (pick: (w: SubscriberProcess) => number): number => workers.reduce((n, w) => n + pick(w), 0);

  const connectStarted = monotonicMs();
  const serverCpuBeforeConnect = treeCpuSeconds(target.pid);
  const perWorker = Math.ceil(options.clients / options.workers);
  workers.forEach((w, id) =>
    w.send({ type: "init", workerId: id, url: target.wsUrl, logins: target.logins.slice(id * perWorker, (id + 1) * perWorker), concurrency: Math.max(1, Math.floor(options.concurrency / options.workers)), timeoutMs: 60_000 }),
  );
  log(`${target.name}: connecting ${options.clients} subscribers from ${options.workers} process(es)`);
  await waitFor(`${target.name} connect`, 180_000 + options.clients * 30, () => workers.every((w) => w.ready !== null), checkAll, () =>
    log(`  subscribed ${sum((w) => w.progress.subscribed)}, failed ${sum((w) => w.progress.failed)} of ${options.clients} (${round((monotonicMs() - connectStarted) / 1000, 1)} s)`),
  );
  const connectSeconds = (monotonicMs() - connectStarted) / 1000;
  const serverCpuAfterConnect = treeCpuSeconds(target.pid);
  const subscribed = sum((w) => w.ready?.subscribed ?? 0);
  const connectFailures: Record<string, number> = {};
  for (const w of workers) for (const [reason, n] of Object.entries(w.ready?.failures ?? {})) connectFailures[reason] = (connectFailures[reason] ?? 0) + n;
  log(`${target.name}: ${subscribed} of ${options.clients} subscribed in ${round(connectSeconds, 1)} s${Object.keys(connectFailures).length ? `; failures ${JSON.stringify(connectFailures)}` : ""}`);
  await sleep(1000);
  const after = await memoryNow(target);

  // The changes.
  const cpu = new CpuMeter(() => ({ server: [target.pid], subscriber_processes: workers.map((w) => w.child.pid ?? -1), orchestrator: [process.pid], ...(options.postgres ? { postgres: postgresPids() } : {}) }));
  for (const w of workers) w.send({ type: "steady" });
  cpu.begin();
  const serverCpuStart = treeCpuSeconds(target.pid);
  const steadyStarted = monotonicMs();
  admin.measuring = true;
  admin.sent = 0;
  log(`${target.name}: ${options.rate} changes/s for ${options.duration} s`);
  const changeSeconds = await admin.run(options.rate, options.duration, options.tables, checkAll);
  // A server behind its subscribers answers the admin late too: wait for every answer first.
  const drainStarted = monotonicMs();
  await waitFor(`${target.name} answers`, options.drainSeconds * 1000, () => admin.unanswered === 0, checkAll, () =>
    log(`  changes unanswered ${admin.unanswered}, events ${sum((w) => w.progress.events)} so far`),
  );
  if (admin.unanswered > 0) throw new Error(`${target.name}: ${admin.unanswered} changes still unanswered ${options.drainSeconds} s after the last was sent (raise --drain)`);
  const finalVersion = admin.lastVersion;
  const expected = subscribed * (finalVersion - setupVersion);
  await waitFor(`${target.name} drain`, Math.max(1000, options.drainSeconds * 1000 - (monotonicMs() - drainStarted)), () => sum((w) => w.progress.events) >= expected, checkAll, () => log(`  events ${sum((w) => w.progress.events)} of ${expected}`));
  const drainSeconds = (monotonicMs() - drainStarted) / 1000;
  const windowSeconds = (monotonicMs() - steadyStarted) / 1000;
  const serverCpuEnd = treeCpuSeconds(target.pid);
  const cpuPercent = cpu.end();

  // Latencies and per-subscriber accounting, in the subscriber processes.
  const sendTimes = new Float64Array(Math.max(0, finalVersion - setupVersion)).fill(Number.NaN);
  for (const [version, at] of admin.sendTimes) if (version > setupVersion) sendTimes[version - setupVersion - 1] = at;
  for (const w of workers) w.send({ type: "collect", sendTimes, firstVersion: setupVersion + 1, finalVersion });
  await waitFor(`${target.name} results`, 60_000, () => workers.every((w) => w.result !== null), checkAll);
  const results = workers.map((w) => w.result!);
  const total = (pick: (r: LobbyWorkerResult) => number): number => results.reduce((n, r) => n + pick(r), 0);
  const latency: Percentiles = percentiles(concatSamples(results.map((r) => r.latencies)));
  const connectMs = percentiles(concatSamples(workers.map((w) => w.ready?.connectMs ?? new Float64Array())));
  const delivered = total((r) => r.events);
  const serverCpuMs = serverCpuStart !== null && serverCpuEnd !== null ? (serverCpuEnd - serverCpuStart) * 1000 : null;
  const perSubscriberKb = (a: number | null, b: number | null): number | null => (a !== null && b !== null && subscribed > 0 ? round((a - b) / subscribed / 1024, 2) : null);
  const mb = (bytes: number | null): number | null => (bytes === null ? null : round(bytes / 1048576, 1));
  const missing = total((r) => r.missing);
  const outOfOrder = total((r) => r.outOfOrder);
  const figures = {
    subscribers: { requested: options.clients, subscribed, failures: connectFailures, closed_before_end: total((r) => r.closed) },
    connect: {
      what: "open + login + subscribe_tables until the table_list, all subscribers",
      seconds: round(connectSeconds, 1),
      per_s: round(subscribed / connectSeconds, 0),
      per_subscriber_ms: connectMs,
      server_cpu_ms_per_subscriber: serverCpuBeforeConnect !== null && serverCpuAfterConnect !== null && subscribed > 0 ? round(((serverCpuAfterConnect - serverCpuBeforeConnect) * 1000) / subscribed, 3) : null,
    },
    changes: { sent: admin.sent, failed: admin.failed, failures: admin.failures, seconds: round(changeSeconds, 1), rate_achieved: round(admin.sent / changeSeconds, 1), versions: finalVersion - setupVersion },
    events: { expected, delivered, missing, out_of_order: outOfOrder, subscribers_with_problems: total((r) => r.subscribersWithProblems), malformed: total((r) => r.malformed), drain_seconds: round(drainSeconds, 1),
      offered_per_s: round(subscribed * options.rate, 0), delivered_per_s: round(delivered / windowSeconds, 0) },
    latency_ms: latency,
    server: {
      cpu_ms_per_s: serverCpuMs === null ? null : round(serverCpuMs / windowSeconds, 1),
      cpu_us_per_event: serverCpuMs === null || delivered === 0 ? null : round((serverCpuMs * 1000) / delivered, 2),
      rss_mb: { before: mb(before.rss), after: mb(after.rss) },
      heap_mb: { before: mb(before.heap), after: mb(after.heap) },
      rss_kb_per_subscriber: perSubscriberKb(after.rss, before.rss),
      heap_kb_per_subscriber: perSubscriberKb(after.heap, before.heap),
    },
    cpu_percent_of_one_core: cpuPercent,
    load_generator: { lag_p99_ms: round(Math.max(...results.map((r) => r.lagP99Ms))), lag_max_ms: round(Math.max(...results.map((r) => r.lagMaxMs))), rss_mb: results.map((r) => round(r.rssMb, 0)) },
  };
  log(`${target.name}: latency p50 ${latency.p50} p99 ${latency.p99} ms; events ${delivered} of ${expected}, missing ${missing}, out of order ${outOfOrder}; server CPU ${figures.server.cpu_us_per_event} µs/event`);
  for (const w of workers) w.send({ type: "stop" });
  await Promise.all(workers.map((w) => waitForExit(w.child, 5000)));
  admin.close();
  const ok = subscribed === options.clients && admin.failed === 0 && missing === 0 && outOfOrder === 0 && delivered === expected;
  return { ok, ...figures };
}

// ---------------------------------------------------------------------------------------
// Output

function printSummary(report: Record<string, any>): void {
  const out: string[] = ["", "Convene lobby fan-out benchmark", `  config: ${JSON.stringify(report.config)}`];
  const p = (x: Percentiles): string => `p50 ${x.p50}  p95 ${x.p95}  p99 ${x.p99}  max ${x.max}  (n=${x.count})`;
  for (const name of ["convene", "ws"]) {
    const r = report[name];
    if (!r) continue;
    out.push(`  ${name === "convene" ? "Convene" : "reference (plain ws broadcast, no database)"}:`);
    out.push(`    subscribers: ${r.subscribers.subscribed} of ${r.subscribers.requested}${Object.keys(r.subscribers.failures).length ? `, failures ${JSON.stringify(r.subscribers.failures)}` : ""}; connect + login + subscribe ${r.connect.seconds} s (${r.connect.per_s}/s), per subscriber ms ${p(r.connect.per_subscriber_ms)}`);
    out.push(`    changes: ${r.changes.sent} sent (${r.changes.rate_achieved}/s), ${r.changes.failed} failed`);
    out.push(`    events: offered ${r.events.offered_per_s}/s, delivered ${r.events.delivered_per_s}/s over the run and its drain (${r.events.drain_seconds} s after the last change)`);
    out.push(`    events: ${r.events.delivered} of ${r.events.expected}, missing ${r.events.missing}, out of order ${r.events.out_of_order}, subscribers with a problem ${r.events.subscribers_with_problems}, malformed ${r.events.malformed}`);
    out.push(`    change → event latency ms: ${p(r.latency_ms)}`);
    out.push(`    server CPU: ${r.server.cpu_ms_per_s} ms/s, ${r.server.cpu_us_per_event} µs per delivered event; RSS ${r.server.rss_kb_per_subscriber} KB, heap ${r.server.heap_kb_per_subscriber} KB per subscriber`);
    out.push(`    CPU % of one core: ${JSON.stringify(r.cpu_percent_of_one_core)}; load generator lag p99 ${r.load_generator.lag_p99_ms} ms`);
  }
  if (report.ratios) out.push(`  ratios convene / ws: ${JSON.stringify(report.ratios)}`);
  out.push(`  total ${report.total_seconds} s; result: ${report.ok ? "OK" : `FAILED${report.error ? `: ${report.error}` : ""}`}`);
  process.stdout.write(`${out.join("\n")}\n`);
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${errorMessage(error)}\n${USAGE}\n`);
    process.exit(2);
  }
  const started = monotonicMs();
  const cleanup = new Cleanup();
  const report: Record<string, any> = {
    bench: "lobby",
    ok: false,
    error: null,
    config: {
      clients: options.clients, rate: options.rate, duration_s: options.duration, tables: options.tables, users: options.users, workers: options.workers,
      database: options.postgres ? "postgres" : "pglite", redis: options.redis, processes: options.processes ?? 1, reference: options.reference, server_env: options.serverEnv,
      node: process.version, cpus: os.cpus().length,
    },
  };
  process.once("SIGINT", () => void cleanup.run().then(() => process.exit(130)));
  let crashed = false;
  try {
    const convene = new Cleanup();
    cleanup.add("stop the Convene run", () => convene.run());
    report.convene = await measure(await startConvene(options, convene), options, convene);
    await convene.run();
    report.ok = report.convene.ok;
    if (options.reference) {
      const reference = new Cleanup();
      cleanup.add("stop the reference run", () => reference.run());
      report.ws = await measure(await startReference(options, reference), options, reference);
      await reference.run();
      const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? round(a / b) : null);
      const c = report.convene;
      const w = report.ws;
      report.ratios = {
        latency_p50: ratio(c.latency_ms.p50, w.latency_ms.p50),
        latency_p99: ratio(c.latency_ms.p99, w.latency_ms.p99),
        rss_per_subscriber: ratio(c.server.rss_kb_per_subscriber, w.server.rss_kb_per_subscriber),
        heap_per_subscriber: ratio(c.server.heap_kb_per_subscriber, w.server.heap_kb_per_subscriber),
        cpu_per_event: ratio(c.server.cpu_us_per_event, w.server.cpu_us_per_event),
        connect_seconds: ratio(c.connect.seconds, w.connect.seconds),
      };
    }
  } catch (error) {
    crashed = true;
    report.error = errorMessage(error);
    log(`error: ${report.error}`);
  }
  await cleanup.run();
  report.total_seconds = round((monotonicMs() - started) / 1000, 1);
  printSummary(report);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(crashed ? 2 : report.ok ? 0 : 1);
}

void main();
