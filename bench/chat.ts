/**
 * Chat fan-out benchmark: `npm run bench:chat [-- options]`. See docs/benchmarks.md.
 *
 * Creates a fresh Postgres database, starts the compiled server on it as a child process,
 * inserts N users with sessions straight into the database, signs their bearer tokens as
 * the server does, creates C channels over REST, connects N Socket.IO clients (spread
 * over load worker processes, bench/chat-worker.ts), subscribes each to one channel, then
 * posts at a steady rate and measures post-to-delivery latency, losses and duplicates.
 * Everything it starts is stopped, and the database dropped, on success and on failure.
 *
 * Progress goes to stderr; the summary goes to stdout and its last line is one JSON object.
 * Exit code: 0 all good; 1 a delivery was lost, a post was refused or a client failed to
 * connect or subscribe; 2 the benchmark itself failed.
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import {
  concatSamples,
  errorMessage,
  percentiles,
  round,
  type AckReport,
  type ClientSpec,
  type FromWorker,
  type LagStats,
  type Percentiles,
  type Phase,
  type PostCommand,
  type ToWorker,
  type Via,
  type WorkerResult,
} from "./chat-shared";
import { UsageError, sleep, log, elapsed, assertLoopback, freePort, postgresPids, CpuMeter, treeCpuSeconds, treeRssBytes, waitFor } from "./lib/util";
import { Cleanup, waitForExit, terminate } from "./lib/cleanup";
import { startServer, serverEnvironment, ServerSampler, HealthProbe, HeapProbe, startReferenceServer } from "./lib/server";
import { createDatabase, createUsers, checkToken, Channel, createChannels } from "./lib/fixtures";

// ---------------------------------------------------------------------------------------
// Options

interface Options {
  clients: number;
  channels: number;
  rate: number;
  duration: number;
  via: Via;
  redis: boolean;
  redisUrl: string;
  workers: number;
  warmupRate: number;
  warmupSeconds: number;
  drainSeconds: number;
  connectConcurrency: number;
  connectTimeoutMs: number;
  ackTimeoutMs: number;
  processes: number | null;
  quick: boolean;
  adminDatabaseUrl: string;
  /** Extra environment for the server (--server-env KEY=VALUE), e.g. DATABASE_POOL_SIZE or NODE_OPTIONS. */
  serverEnv: Record<string, string>;
  /** Extra node flags for the server (--server-node-arg), e.g. --cpu-prof. */
  serverNodeArgs: string[];
  /** --rates: deliveries per second of each sweep phase, after the steady phase. */
  rates: number[];
  sweepSeconds: number;
  /** Heap per client through the server's V8 inspector (--inspect on a loopback port). */
  heap: boolean;
  /** Also measure a plain Socket.IO server's memory per client with the same clients (bench/chat-reference.ts). */
  memoryReference: boolean;
}

const USAGE = `usage: npm run bench:chat -- [options]
  --quick                  1,000 clients, 10 channels, 50 msg/s for 10 s (under a minute)
  --clients N              Socket.IO clients, one user each (default 10000)
  --channels C             channels; client i joins channel i mod C (default 100)
  --rate R                 posts per second in the steady phase, all channels (default 100)
  --duration S             steady phase length in seconds (default 30)
  --via socket|rest        post with Socket.IO chat:send or REST POST (default socket)
  --rest                   the same as --via rest: post like an outside client
  --rates D1,D2,...        after the steady phase, one sweep phase per rate, in deliveries per second
                           (posts/s = D / subscribers per channel), with p50/p99 and CPU per delivery each
  --sweep-duration S       length of each sweep phase in seconds (default 10; quick 5)
  --no-heap                do not start the server with --inspect (no heap per client, no forced GC)
  --no-reference           skip the plain Socket.IO server's memory per client (the reference)
  --redis                  give the server REDIS_URL (BENCH_REDIS_URL or redis://127.0.0.1:6379)
  --processes P            give the server PROCESSES=P (needs --redis)
  --workers W              load worker processes (default ceil(N / 5000), at most 8)
  --warmup S               reference phase length in seconds (default 5; quick 3)
  --warmup-rate R          reference phase rate, posts per second (default 10)
  --drain S                how long to wait for outstanding deliveries (default 15)
  --connect-concurrency K  connects in flight at once, all workers together (default 200)
  --server-env KEY=VALUE   extra environment for the server, repeatable (e.g. DATABASE_POOL_SIZE=20,
                           NODE_OPTIONS=--max-old-space-size=4096)
  --server-node-arg FLAG   extra node flag for the server, repeatable (e.g. --cpu-prof, --cpu-prof-dir=/tmp/p)
env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_REDIS_URL`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: "boolean", default: false },
      clients: { type: "string" },
      channels: { type: "string" },
      rate: { type: "string" },
      duration: { type: "string" },
      via: { type: "string" },
      rest: { type: "boolean", default: false },
      rates: { type: "string" },
      "sweep-duration": { type: "string" },
      "no-heap": { type: "boolean", default: false },
      "no-reference": { type: "boolean", default: false },
      redis: { type: "boolean", default: false },
      processes: { type: "string" },
      workers: { type: "string" },
      warmup: { type: "string" },
      "warmup-rate": { type: "string" },
      drain: { type: "string" },
      "connect-concurrency": { type: "string" },
      "server-env": { type: "string", multiple: true },
      "server-node-arg": { type: "string", multiple: true },
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
    if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value)))
      throw new UsageError(`--${name} must be ${integer ? "an integer" : "a number"} >= ${min} (got ${raw})`);
    return value;
  };
  const quick = values.quick === true;
  const clients = number("clients", values.clients, quick ? 1000 : 10_000, 1);
  const channels = number("channels", values.channels, quick ? 10 : 100, 1);
  if (channels > clients) throw new UsageError("--channels cannot exceed --clients (every channel needs a client)");
  const via = values.rest ? "rest" : (values.via ?? "socket");
  if (via !== "socket" && via !== "rest") throw new UsageError("--via must be socket or rest");
  const processes = values.processes === undefined ? null : number("processes", values.processes, 1, 1);
  if (processes !== null && processes > 1 && !values.redis) throw new UsageError("--processes > 1 needs --redis");
  const workers = number("workers", values.workers, Math.min(8, Math.max(1, Math.ceil(clients / 5000))), 1);
  if (Math.ceil(clients / workers) > 19_000)
    throw new UsageError(`${Math.ceil(clients / workers)} sockets per worker exceed the ~19,900 file descriptors a process may hold here; raise --workers`);
  const serverEnv: Record<string, string> = {};
  for (const pair of values["server-env"] ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new UsageError(`--server-env takes KEY=VALUE (got ${pair})`);
    serverEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    serverEnv,
    serverNodeArgs: values["server-node-arg"] ?? [],
    rates: (values.rates ?? "")
      .split(",")
      .filter((r) => r.trim() !== "")
      .map((r) => number("rates", r.trim(), 0, 1)),
    sweepSeconds: number("sweep-duration", values["sweep-duration"], quick ? 5 : 10, 1, false),
    heap: values["no-heap"] !== true,
    memoryReference: values["no-heap"] !== true && values["no-reference"] !== true,
    clients,
    channels,
    rate: number("rate", values.rate, quick ? 50 : 100, 0.1, false),
    duration: number("duration", values.duration, quick ? 10 : 30, 1, false),
    via,
    redis: values.redis === true,
    redisUrl: process.env.BENCH_REDIS_URL || "redis://127.0.0.1:6379",
    workers: Math.min(workers, channels),
    warmupRate: number("warmup-rate", values["warmup-rate"], 10, 0.1, false),
    warmupSeconds: number("warmup", values.warmup, quick ? 3 : 5, 0, false),
    drainSeconds: number("drain", values.drain, 15, 1, false),
    connectConcurrency: number("connect-concurrency", values["connect-concurrency"], 200, 1),
    connectTimeoutMs: 20_000,
    ackTimeoutMs: 10_000,
    processes,
    quick,
    adminDatabaseUrl: process.env.BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres",
  };
}

// ---------------------------------------------------------------------------------------
// Load workers

class Worker {
  ready: Extract<FromWorker, { type: "ready" }> | null = null;
  connectProgress = { attempted: 0, connected: 0, subscribed: 0 };
  received = 0;
  duplicates = 0;
  result: WorkerResult | null = null;
  fatal: string | null = null;
  exited = false;

  constructor(
    readonly id: number,
    readonly child: ChildProcess,
    onAcks: (acks: AckReport[]) => void,
  ) {
    child.on("message", (raw: unknown) => {
      const message = raw as FromWorker;
      switch (message.type) {
        case "connect-progress":
          this.connectProgress = message;
          break;
        case "ready":
          this.ready = message;
          this.connectProgress = { attempted: message.connected, connected: message.connected, subscribed: message.subscribed };
          break;
        case "acks":
          onAcks(message.acks);
          break;
        case "progress":
          this.received = message.received;
          this.duplicates = message.duplicates;
          break;
        case "result":
          this.result = message;
          break;
        case "fatal":
          this.fatal = message.error;
          break;
      }
    });
    child.on("exit", () => {
      this.exited = true;
    });
  }

  send(message: ToWorker): void {
    if (this.child.connected) this.child.send(message);
  }

  assertAlive(): void {
    if (this.fatal) throw new Error(`load worker ${this.id} failed: ${this.fatal}`);
    if (this.exited && !this.result) throw new Error(`load worker ${this.id} exited unexpectedly`);
  }
}

// ---------------------------------------------------------------------------------------
// Posting

interface PostRecord {
  phase: Phase;
  channelIndex: number;
  ack: AckReport | null;
}

class Poster {
  readonly posts = new Map<string, PostRecord>();
  readonly ackFailures: Record<string, number> = {};
  readonly ackMs: Record<Phase, number[]> = {};
  acked = 0;
  failed = 0;
  /** Deliveries expected from accepted posts: the subscribers of each post's channel. */
  expected = 0;
  private readonly senderCursor: number[];

  constructor(
    private readonly channels: Channel[],
    /** Subscribed client indexes per channel. */
    private readonly members: number[][],
    private readonly workerOfChannel: number[],
    private readonly workers: Worker[],
  ) {
    this.senderCursor = channels.map(() => 0);
  }

  onAcks(acks: AckReport[]): void {
    for (const ack of acks) {
      const record = this.posts.get(ack.k);
      if (!record || record.ack) continue;
      record.ack = ack;
      if (ack.ok) {
        this.acked++;
        this.expected += this.members[record.channelIndex].length;
        (this.ackMs[record.phase] ??= []).push(ack.ms);
      } else {
        this.failed++;
        const reason = ack.error ?? "unknown";
        this.ackFailures[reason] = (this.ackFailures[reason] ?? 0) + 1;
      }
    }
  }

  get pending(): number {
    return this.posts.size - this.acked - this.failed;
  }

  /** Posts at `rate` per second for `seconds`, round-robin over the channels that have subscribers. */
  async run(phase: Phase, rate: number, seconds: number, check: () => void): Promise<{ posted: number; seconds: number }> {
    const active = this.channels.map((_, i) => i).filter((i) => this.members[i].length > 0);
    if (active.length === 0) throw new Error("no channel has a subscribed client");
    const total = Math.max(1, Math.round(rate * seconds));
    let posted = 0;
    let channelCursor = 0;
    const started = performance.now();
    let lastCheck = 0;
    while (posted < total) {
      const now = performance.now();
      if (now - lastCheck > 250) {
        check();
        lastCheck = now;
      }
      const due = Math.min(total, Math.floor(((now - started) / 1000) * rate) + 1);
      const batches = new Map<number, PostCommand[]>();
      while (posted < due) {
        const channelIndex = active[channelCursor++ % active.length];
        const members = this.members[channelIndex];
        const clientIdx = members[this.senderCursor[channelIndex]++ % members.length];
        const k = randomUUID();
        this.posts.set(k, { phase, channelIndex, ack: null });
        const worker = this.workerOfChannel[channelIndex];
        const batch = batches.get(worker) ?? [];
        batch.push({ k, phase, clientIdx, channelId: this.channels[channelIndex].id });
        batches.set(worker, batch);
        posted++;
      }
      for (const [worker, posts] of batches) this.workers[worker].send({ type: "send", posts });
      if (posted < total) await sleep(Math.max(1, Math.min(10, ((posted / rate) * 1000 - (performance.now() - started)))));
    }
    return { posted, seconds: (performance.now() - started) / 1000 };
  }
}

// ---------------------------------------------------------------------------------------
// The run

interface Report {
  ok: boolean;
  error: string | null;
  config: Record<string, unknown>;
  [key: string]: unknown;
}

async function run(options: Options, cleanup: Cleanup, report: Report): Promise<boolean> {
  const runStarted = performance.now();
  const runId = randomBytes(4).toString("hex");
  assertLoopback(options.adminDatabaseUrl, "BENCH_DATABASE_URL");
  if (options.redis) assertLoopback(options.redisUrl, "BENCH_REDIS_URL");
  const ttlSeconds = 86_400;
  const secret = randomBytes(36).toString("base64url"); // 48 characters

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "convene-bench-"));
  cleanup.add("remove the temporary directory", async () => fs.rmSync(tmp, { recursive: true, force: true }));

  const databaseName = `convene_bench_${runId}`;
  const databaseUrl = await createDatabase(options.adminDatabaseUrl, databaseName, cleanup);
  log(`created database ${databaseName}`);

  const port = await freePort();
  const env = serverEnvironment({ tmp, port, databaseUrl, secret, runId, redisUrl: options.redis ? options.redisUrl : null, processes: options.processes, extra: options.serverEnv });

  // The inspector only forces GCs and reads process.memoryUsage() at two idle moments (see HeapProbe).
  const inspectorPort = options.heap ? await freePort() : null;
  const nodeArgs = inspectorPort === null ? options.serverNodeArgs : [`--inspect=127.0.0.1:${inspectorPort}`, ...options.serverNodeArgs];
  const server = await startServer({ nodeArgs, redisUrl: options.redis ? options.redisUrl : null }, env, port, cleanup);
  const heapProbe = inspectorPort === null ? null : new HeapProbe(inspectorPort);
  const sampler = new ServerSampler(server);
  await sampler.start();
  cleanup.add("stop sampling", async () => sampler.stop());
  const health = new HealthProbe(`${server.url}/health`);
  const ready = new HealthProbe(`${server.url}/ready`);
  await health.burst("idle", 50);
  await ready.burst("idle", 50);
  const rssAfterReady = sampler.rssNowMb();

  const users = await createUsers(databaseUrl, options.clients, secret, ttlSeconds);
  await checkToken(server.url, users[0]);
  log("GET /users/me accepts a benchmark token");
  const channels = await createChannels(server.url, options.channels, users[0].token, runId);

  // Client i is in channel i mod C; all clients of a channel live in one worker.
  const workerOfChannel = channels.map((_, c) => c % options.workers);
  const specsByWorker: ClientSpec[][] = Array.from({ length: options.workers }, () => []);
  users.forEach((user, i) => {
    const channel = i % channels.length;
    specsByWorker[workerOfChannel[channel]].push({ idx: i, token: user.token, channelId: channels[channel].id });
  });

  const workerFile = path.join(__dirname, "chat-worker.js");
  let poster: Poster | null = null;
  const workers: Worker[] = specsByWorker.map((_, id) => {
    const child = fork(workerFile, [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const worker = new Worker(id, child, (acks) => poster?.onAcks(acks));
    cleanup.add(`stop load worker ${id}`, async () => {
      worker.send({ type: "stop" });
      if (!(await waitForExit(child, 5000))) await terminate(child, `load worker ${id}`, 2000);
    });
    return worker;
  });
  const checkAll = (): void => {
    server.assertAlive();
    for (const worker of workers) worker.assertAlive();
  };

  const cpu = new CpuMeter(() => ({
    server: [server.pid],
    load_workers: workers.map((w) => w.child.pid ?? -1),
    orchestrator: [process.pid],
    // Every Postgres process on the machine: backends, WAL writer, checkpointer (loopback only, so ours).
    postgres: postgresPids(),
  }));
  const cpuByPhase: Record<string, Record<string, number | null>> = {};

  // Idle memory before the clients, after a full GC (the reference for the per-client figures).
  const memoryNow = async (): Promise<{ heapUsed: number | null; rss: number | null }> => {
    const usage = heapProbe ? await heapProbe.afterGc() : null;
    return { heapUsed: usage?.heapUsed ?? null, rss: treeRssBytes(server.pid) };
  };
  const memoryBefore = await memoryNow();

  // Connect storm.
  const serverCpuBeforeConnect = treeCpuSeconds(server.pid);
  cpu.begin();
  sampler.setPhase("connect");
  health.phase = ready.phase = "connect";
  health.start();
  ready.start();
  cleanup.add("stop the health probes", async () => {
    health.stop();
    ready.stop();
  });
  const connectStarted = performance.now();
  const perWorkerConcurrency = Math.max(1, Math.floor(options.connectConcurrency / options.workers));
  workers.forEach((worker, id) =>
    worker.send({
      type: "init",
      workerId: id,
      url: server.url,
      clients: specsByWorker[id],
      concurrency: perWorkerConcurrency,
      connectTimeoutMs: options.connectTimeoutMs,
      ackTimeoutMs: options.ackTimeoutMs,
      via: options.via,
    }),
  );
  log(`connecting ${options.clients} Socket.IO clients from ${options.workers} load worker process(es), ${perWorkerConcurrency} in flight per worker`);
  await waitFor(
    "connect and subscribe",
    120_000 + options.clients * 20,
    () => workers.every((w) => w.ready !== null),
    checkAll,
    () => {
      const sum = workers.reduce((s, w) => ({ connected: s.connected + w.connectProgress.connected, subscribed: s.subscribed + w.connectProgress.subscribed }), { connected: 0, subscribed: 0 });
      log(`  connected ${sum.connected}, subscribed ${sum.subscribed} of ${options.clients} (${elapsed(connectStarted)})`);
    },
  );
  const connectSeconds = (performance.now() - connectStarted) / 1000;
  cpuByPhase.connect = cpu.end();
  const connected = workers.reduce((n, w) => n + (w.ready?.connected ?? w.connectProgress.connected), 0);
  const subscribed = workers.reduce((n, w) => n + (w.ready?.subscribed ?? w.connectProgress.subscribed), 0);
  const connectFailures: Record<string, number> = {};
  for (const worker of workers)
    for (const [reason, count] of Object.entries(worker.ready?.failures ?? {})) connectFailures[reason] = (connectFailures[reason] ?? 0) + count;
  const connectMs = percentiles(concatSamples(workers.map((w) => w.ready?.connectMs ?? new Float64Array())));
  log(
    `connected ${connected}, subscribed ${subscribed} of ${options.clients} in ${connectSeconds.toFixed(1)} s` +
      (Object.keys(connectFailures).length ? `; failures: ${JSON.stringify(connectFailures)}` : ""),
  );
  const rssAfterConnect = sampler.rssNowMb();
  const serverCpuAfterConnect = treeCpuSeconds(server.pid);
  // Idle with every client connected and subscribed, after a full GC.
  await sleep(1000);
  const memoryAfter = await memoryNow();
  const perClient = (a: number | null, b: number | null): number | null => (a !== null && b !== null && subscribed > 0 ? round((a - b) / subscribed / 1024, 1) : null);
  const memoryPerClient = {
    what: "idle, subscribed, after a full GC: (after the connect storm − before it) ÷ subscribed clients; heap of the primary process only",
    heap_kb: perClient(memoryAfter.heapUsed, memoryBefore.heapUsed),
    rss_kb: perClient(memoryAfter.rss, memoryBefore.rss),
    heap_mb: { before: memoryBefore.heapUsed === null ? null : round(memoryBefore.heapUsed / 1048576, 1), after: memoryAfter.heapUsed === null ? null : round(memoryAfter.heapUsed / 1048576, 1) },
    rss_mb: { before: memoryBefore.rss === null ? null : round(memoryBefore.rss / 1048576, 1), after: memoryAfter.rss === null ? null : round(memoryAfter.rss / 1048576, 1) },
  };
  log(`memory per client (idle, after GC): heap ${memoryPerClient.heap_kb} KB, RSS ${memoryPerClient.rss_kb} KB`);
  const connectStorm = {
    seconds: round(connectSeconds, 1),
    connects_per_s: round(subscribed / connectSeconds, 0),
    server_cpu_ms_per_connect:
      serverCpuAfterConnect !== null && serverCpuBeforeConnect !== null && subscribed > 0 ? round(((serverCpuAfterConnect - serverCpuBeforeConnect) * 1000) / subscribed, 3) : null,
  };

  const members: number[][] = channels.map(() => []);
  const channelOfClient = (idx: number): number => idx % channels.length;
  for (const worker of workers) for (const idx of worker.ready?.subscribedClients ?? []) members[channelOfClient(idx)].push(idx);
  poster = new Poster(channels, members, workerOfChannel, workers);
  const activePoster = poster;
  const received = (): number => workers.reduce((n, w) => n + w.received, 0);

  const genLag = monitorEventLoopDelay({ resolution: 10 });
  genLag.enable();
  const orchestratorLag: Partial<Record<Phase, LagStats>> = {};
  const phaseSeconds: Partial<Record<Phase, number>> = {};
  const drainSeconds: Partial<Record<Phase, number>> = {};
  /** Server CPU seconds from the start of each phase to the end of its drain. */
  const serverCpuSeconds: Partial<Record<Phase, number>> = {};

  const runPhase = async (phase: Phase, rate: number, seconds: number, drainLimit: number): Promise<void> => {
    sampler.setPhase(phase);
    health.phase = ready.phase = phase;
    for (const worker of workers) worker.send({ type: "phase", phase });
    genLag.reset();
    const serverCpuStart = treeCpuSeconds(server.pid);
    cpu.begin();
    log(`${phase}: posting ${rate} msg/s for ${seconds} s via ${options.via}`);
    const { posted, seconds: took } = await activePoster.run(phase, rate, seconds, checkAll);
    phaseSeconds[phase] = took;
    cpuByPhase[phase] = cpu.end();
    orchestratorLag[phase] = { p50: genLag.percentile(50) / 1e6, p99: genLag.percentile(99) / 1e6, max: genLag.max / 1e6 };
    for (const worker of workers) worker.send({ type: "phase", phase: null });
    log(`${phase}: posted ${posted} in ${took.toFixed(1)} s; waiting for acks and deliveries (up to ${drainLimit} s)`);
    sampler.setPhase(`${phase}-drain`);
    health.phase = ready.phase = `${phase}-drain`;
    const drainStarted = performance.now();
    await waitFor(
      `${phase} drain`,
      drainLimit * 1000,
      () => activePoster.pending === 0 && received() >= activePoster.expected,
      checkAll,
      () => log(`  acks pending ${activePoster.pending}, deliveries ${received()} of ${activePoster.expected}`),
    );
    drainSeconds[phase] = (performance.now() - drainStarted) / 1000;
    const serverCpuEnd = treeCpuSeconds(server.pid);
    if (serverCpuStart !== null && serverCpuEnd !== null) serverCpuSeconds[phase] = serverCpuEnd - serverCpuStart;
    log(`${phase}: acked ${activePoster.acked}, failed ${activePoster.failed}, deliveries ${received()} of ${activePoster.expected} expected so far`);
  };

  if (options.warmupSeconds > 0) await runPhase("warmup", options.warmupRate, options.warmupSeconds, Math.min(options.drainSeconds, 10));
  // Extra beat between phases so the steady phase starts on a quiet server.
  await sleep(500);
  await runPhase("steady", options.rate, options.duration, options.drainSeconds);
  // Rate sweep: deliveries per second → posts per second at this channel size.
  const subscribersPerChannel = Math.max(1, subscribed / channels.length);
  const sweepPhases: { phase: Phase; deliveriesPerSecond: number; postsPerSecond: number }[] = [];
  for (const deliveriesPerSecond of options.rates) {
    const postsPerSecond = round(deliveriesPerSecond / subscribersPerChannel, 2);
    const phase = `sweep-${deliveriesPerSecond}`;
    sweepPhases.push({ phase, deliveriesPerSecond, postsPerSecond });
    await sleep(500);
    await runPhase(phase, postsPerSecond, options.sweepSeconds, options.drainSeconds);
  }
  sampler.setPhase("done");
  health.phase = ready.phase = "done";
  genLag.disable();

  // Collect.
  for (const worker of workers) worker.send({ type: "collect" });
  await waitFor("results from load workers", 30_000, () => workers.every((w) => w.result !== null || w.exited), () => undefined);
  await sleep(100); // acks flushed just before the result
  const results = workers.map((w) => w.result).filter((r): r is WorkerResult => r !== null);
  if (results.length !== workers.length) throw new Error("some load workers did not report results");

  // Exact accounting per post: each accepted post should reach every subscriber of its channel once.
  const receivedByKey = new Map<string, number>();
  for (const result of results) for (const [k, n] of result.receivedByKey) receivedByKey.set(k, (receivedByKey.get(k) ?? 0) + n);
  let expected = 0;
  let receivedForAccepted = 0;
  let messagesWithLoss = 0;
  let unexpected = 0;
  const byPhase: Record<Phase, { posted: number; acked: number; expected: number; received: number }> = {};
  for (const phase of ["warmup", "steady", ...sweepPhases.map((s) => s.phase)]) byPhase[phase] = { posted: 0, acked: 0, expected: 0, received: 0 };
  for (const [k, record] of activePoster.posts) {
    const got = receivedByKey.get(k) ?? 0;
    const phase = (byPhase[record.phase] ??= { posted: 0, acked: 0, expected: 0, received: 0 });
    phase.posted++;
    if (record.ack?.ok) {
      const want = members[record.channelIndex].length;
      expected += want;
      receivedForAccepted += Math.min(got, want);
      if (got < want) messagesWithLoss++;
      phase.acked++;
      phase.expected += want;
      phase.received += Math.min(got, want);
    } else unexpected += got;
  }
  let foreignKeys = 0;
  for (const k of receivedByKey.keys()) if (!activePoster.posts.has(k)) foreignKeys++;
  const lost = expected - receivedForAccepted;
  const sum = (pick: (r: WorkerResult) => number): number => results.reduce((n, r) => n + pick(r), 0);
  const disconnects: Record<string, number> = {};
  for (const r of results) for (const [reason, n] of Object.entries(r.disconnects)) disconnects[reason] = (disconnects[reason] ?? 0) + n;

  const latencyOf = (phase: Phase): Percentiles => percentiles(concatSamples(results.map((r) => r.latencies[phase] ?? new Float64Array())));
  const latency = { warmup: latencyOf("warmup"), steady: latencyOf("steady") };
  const cpuUsPerDelivery = (phase: Phase): number | null => {
    const seconds = serverCpuSeconds[phase];
    const deliveries = byPhase[phase]?.received ?? 0;
    return seconds === undefined || deliveries === 0 ? null : round((seconds * 1e6) / deliveries, 1);
  };
  const sweep = sweepPhases.map(({ phase, deliveriesPerSecond, postsPerSecond }) => {
    const stats = byPhase[phase];
    const l = latencyOf(phase);
    return {
      deliveries_per_s: deliveriesPerSecond,
      posts_per_s: postsPerSecond,
      achieved_deliveries_per_s: phaseSeconds[phase] ? round(stats.received / (phaseSeconds[phase] ?? 1), 0) : null,
      delivery_ms: l,
      post_ack_ms: percentiles(Float64Array.from(activePoster.ackMs[phase] ?? [])),
      lost: stats.expected - stats.received,
      failed_posts: stats.posted - stats.acked,
      server_cpu_us_per_delivery: cpuUsPerDelivery(phase),
      cpu_percent_of_one_core: cpuByPhase[phase] ?? null,
      drain_seconds: round(drainSeconds[phase] ?? 0, 1),
    };
  });
  const steadyMaxBySecond: number[] = [];
  for (const r of results) r.steadyMaxBySecond.forEach((v, i) => (steadyMaxBySecond[i] = Math.max(steadyMaxBySecond[i] ?? 0, v)));
  const ackLatency = {
    warmup: percentiles(Float64Array.from(activePoster.ackMs.warmup ?? [])),
    steady: percentiles(Float64Array.from(activePoster.ackMs.steady ?? [])),
  };
  const maxLag = (phase: Phase): LagStats | null => {
    const lags = results.map((r) => r.lag[phase]).filter((l): l is LagStats => l !== undefined);
    if (!lags.length) return null;
    return { p50: round(Math.max(...lags.map((l) => l.p50))), p99: round(Math.max(...lags.map((l) => l.p99))), max: round(Math.max(...lags.map((l) => l.max))) };
  };
  const serverLag = (phase: string): number | null => {
    const values = sampler.lagP99ByPhase[phase];
    return values && values.length ? round(Math.max(...values)) : null;
  };
  const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? round(a / b) : null);
  const healthIdle = health.stats("idle");
  const healthWarmup = health.stats("warmup");
  const healthSteady = health.stats("steady");
  const steadyAchievedRate = (phaseSeconds.steady ?? 0) > 0 ? byPhase.steady.posted / (phaseSeconds.steady ?? 1) : 0;
  const mb = (bytes: number | undefined): number | null => (bytes ? round(bytes / 1024 / 1024, 1) : null);

  Object.assign(report, {
    clients: { requested: options.clients, connected, subscribed, connect_failures: connectFailures, connect_seconds: round(connectSeconds, 1), connect_rate_per_s: round(subscribed / connectSeconds, 0), connect_ms: connectMs, unexpected_disconnects: disconnects },
    channels: { count: channels.length, subscribers_min: Math.min(...members.map((m) => m.length)), subscribers_max: Math.max(...members.map((m) => m.length)) },
    messages: { posted: activePoster.posts.size, acked: activePoster.acked, failed: activePoster.failed, failures: activePoster.ackFailures, steady_rate_achieved: round(steadyAchievedRate, 1), by_phase: byPhase },
    deliveries: { expected, received: receivedForAccepted, lost, messages_with_loss: messagesWithLoss, duplicates: sum((r) => r.duplicates), unexpected_for_failed_posts: unexpected, misrouted: sum((r) => r.misrouted), malformed: sum((r) => r.malformed), out_of_order: sum((r) => r.outOfOrder), foreign: sum((r) => r.foreign) + foreignKeys, drain_seconds: { warmup: drainSeconds.warmup === undefined ? null : round(drainSeconds.warmup, 1), steady: round(drainSeconds.steady ?? 0, 1) } },
    latency_ms: { delivery: latency, post_ack: ackLatency, steady_max_by_second: Array.from(steadyMaxBySecond, (v) => Math.round(v ?? 0)) },
    reference: {
      what: "delivery p99 of the warm-up phase (low rate, same clients, same run)",
      warmup_rate: options.warmupRate,
      warmup_delivery_p99_ms: latency.warmup.p99,
      steady_delivery_p99_ms: latency.steady.p99,
      ratio_steady_to_warmup_p99: ratio(latency.steady.p99, latency.warmup.p99),
      health_rtt_ms: { idle: healthIdle, warmup: healthWarmup, steady: healthSteady, failures: health.failures },
      ratio_health_p50_steady_to_idle: ratio(healthSteady.p50, healthIdle.p50),
      ready_rtt_ms: { idle: ready.stats("idle"), warmup: ready.stats("warmup"), steady: ready.stats("steady"), failures: ready.failures },
      ratio_ready_p50_steady_to_idle: ratio(ready.stats("steady").p50, ready.stats("idle").p50),
    },
    server: {
      pid: server.pid,
      rss_mb: { after_ready: rssAfterReady, after_connect: rssAfterConnect, peak: mb(sampler.rssPeak), peak_steady: mb(sampler.rssPeakByPhase.steady) },
      metrics_endpoint: sampler.metricsAvailable,
      eventloop_delay_p99_ms: sampler.metricsAvailable ? { warmup: serverLag("warmup"), steady: serverLag("steady"), steady_drain: serverLag("steady-drain") } : null,
      log_lines: server.lineCount,
    },
    cpu_percent_of_one_core: { ...cpuByPhase, cores: os.cpus().length },
    load_generator: {
      workers: options.workers,
      worker_eventloop_delay_ms: { warmup: maxLag("warmup"), steady: maxLag("steady") },
      orchestrator_eventloop_delay_ms: {
        steady: orchestratorLag.steady ? { p50: round(orchestratorLag.steady.p50), p99: round(orchestratorLag.steady.p99), max: round(orchestratorLag.steady.max) } : null,
      },
      worker_rss_mb: results.map((r) => round(r.rssMb, 1)),
    },
    memory_per_client: memoryPerClient,
    connect_storm: connectStorm,
    server_cpu_us_per_delivery: { what: "server CPU (user + system) from a phase's start to the end of its drain ÷ its deliveries (the posts' own work included)", warmup: cpuUsPerDelivery("warmup"), steady: cpuUsPerDelivery("steady") },
    sweep,
    total_seconds: round((performance.now() - runStarted) / 1000, 1),
  });
  const allConnected = subscribed === options.clients;
  return lost === 0 && activePoster.failed === 0 && allConnected;
}

/**
 * The reference for the memory figures: bench/chat-reference.ts (plain Socket.IO, its
 * defaults) with the same number of clients from the same load worker code, connected and
 * subscribed, idle, after a full GC, measured the same way as Convene.
 */
async function measureReferenceMemory(options: Options, cleanup: Cleanup): Promise<Record<string, unknown>> {
  const inspectorPort = await freePort();
  const { pid, port } = await startReferenceServer("chat-reference.js", inspectorPort, cleanup);
  log(`reference: plain Socket.IO server pid ${pid} on port ${port}`);
  const heap = new HeapProbe(inspectorPort);
  const memory = async () => ({ heapUsed: (await heap.afterGc())?.heapUsed ?? null, rss: treeRssBytes(pid) });
  const before = await memory();
  const cpuBefore = treeCpuSeconds(pid);
  const specsByWorker: ClientSpec[][] = Array.from({ length: options.workers }, () => []);
  for (let i = 0; i < options.clients; i++) specsByWorker[i % options.workers].push({ idx: i, token: "reference", channelId: `c${i % options.channels}` });
  const workers = specsByWorker.map((specs, id) => {
    const worker = new Worker(id, fork(path.join(__dirname, "chat-worker.js"), [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] }), () => undefined);
    cleanup.add(`stop reference load worker ${id}`, async () => {
      worker.send({ type: "stop" });
      if (!(await waitForExit(worker.child, 5000))) await terminate(worker.child, `reference load worker ${id}`, 2000);
    });
    worker.send({
      type: "init",
      workerId: id,
      url: `http://127.0.0.1:${port}`,
      clients: specs,
      concurrency: Math.max(1, Math.floor(options.connectConcurrency / options.workers)),
      connectTimeoutMs: options.connectTimeoutMs,
      ackTimeoutMs: options.ackTimeoutMs,
      via: options.via,
    });
    return worker;
  });
  const started = performance.now();
  await waitFor("reference connect and subscribe", 120_000 + options.clients * 20, () => workers.every((w) => w.ready !== null), () => {
    for (const worker of workers) worker.assertAlive();
  }, () => undefined);
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = treeCpuSeconds(pid);
  const subscribed = workers.reduce((n, w) => n + (w.ready?.subscribed ?? 0), 0);
  await sleep(1000);
  const after = await memory();
  const perClient = (a: number | null, b: number | null): number | null => (a !== null && b !== null && subscribed > 0 ? round((a - b) / subscribed / 1024, 1) : null);
  const heapKb = perClient(after.heapUsed, before.heapUsed);
  const rssKb = perClient(after.rss, before.rss);
  log(`reference: ${subscribed} subscribed in ${seconds.toFixed(1)} s; heap ${heapKb} KB, RSS ${rssKb} KB per client`);
  return {
    what: "a plain Socket.IO server (bench/chat-reference.ts, defaults; any handshake; chat:subscribe joins a room) with the same clients, measured as memory_per_client",
    subscribed,
    heap_kb: heapKb,
    rss_kb: rssKb,
    connect_seconds: round(seconds, 1),
    server_cpu_ms_per_connect: cpuAfter !== null && cpuBefore !== null && subscribed > 0 ? round(((cpuAfter - cpuBefore) * 1000) / subscribed, 3) : null,
  };
}

// ---------------------------------------------------------------------------------------
// Output

function fmt(value: unknown): string {
  return value === null || value === undefined ? "n/a" : String(value);
}

function printSummary(report: Report): void {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a printing view of the report built above
  const r = report as Record<string, any>;
  const out: string[] = [];
  out.push("");
  out.push("Convene chat fan-out benchmark");
  out.push(`  config: ${JSON.stringify(report.config)}`);
  if (r.clients) {
    const p = (x: Percentiles): string => `p50 ${fmt(x.p50)}  p95 ${fmt(x.p95)}  p99 ${fmt(x.p99)}  max ${fmt(x.max)}  (n=${x.count})`;
    out.push(`  clients: ${r.clients.connected} connected, ${r.clients.subscribed} subscribed of ${r.clients.requested} in ${r.clients.connect_seconds} s (${r.clients.connect_rate_per_s}/s); connect+subscribe ms ${p(r.clients.connect_ms)}`);
    if (Object.keys(r.clients.connect_failures).length) out.push(`  connect failures: ${JSON.stringify(r.clients.connect_failures)}`);
    if (Object.keys(r.clients.unexpected_disconnects).length) out.push(`  unexpected disconnects: ${JSON.stringify(r.clients.unexpected_disconnects)}`);
    out.push(`  channels: ${r.channels.count}, ${r.channels.subscribers_min}-${r.channels.subscribers_max} subscribers each`);
    out.push(`  messages: ${r.messages.posted} posted, ${r.messages.acked} acked, ${r.messages.failed} failed; steady rate achieved ${r.messages.steady_rate_achieved} msg/s`);
    if (r.messages.failed) out.push(`  post failures: ${JSON.stringify(r.messages.failures)}`);
    const d = r.deliveries;
    out.push(`  deliveries: ${d.received} received of ${d.expected} expected, lost ${d.lost} (in ${d.messages_with_loss} messages), duplicates ${d.duplicates}, misrouted ${d.misrouted}, malformed ${d.malformed}, out of order ${d.out_of_order}, foreign ${d.foreign}`);
    out.push(`  delivery latency ms, steady: ${p(r.latency_ms.delivery.steady)}`);
    out.push(`  worst delivery latency ms per second of the steady phase: ${r.latency_ms.steady_max_by_second.join(" ")}`);
    out.push(`  delivery latency ms, warm-up (reference): ${p(r.latency_ms.delivery.warmup)}`);
    out.push(`  post-ack latency ms, steady: ${p(r.latency_ms.post_ack.steady)}`);
    out.push(`  ratio steady p99 / warm-up p99: ${fmt(r.reference.ratio_steady_to_warmup_p99)}`);
    out.push(`  GET /health RTT ms p50: idle ${fmt(r.reference.health_rtt_ms.idle.p50)}, steady ${fmt(r.reference.health_rtt_ms.steady.p50)} p99 ${fmt(r.reference.health_rtt_ms.steady.p99)} (p50 ratio ${fmt(r.reference.ratio_health_p50_steady_to_idle)})`);
    out.push(`  GET /ready RTT ms (pool + SELECT 1): idle p50 ${fmt(r.reference.ready_rtt_ms.idle.p50)}, steady p50 ${fmt(r.reference.ready_rtt_ms.steady.p50)} p99 ${fmt(r.reference.ready_rtt_ms.steady.p99)}`);
    out.push(`  server RSS MB: after ready ${fmt(r.server.rss_mb.after_ready)}, after connect ${fmt(r.server.rss_mb.after_connect)}, peak ${fmt(r.server.rss_mb.peak)}`);
    out.push(`  server event-loop delay p99 ms (GET /metrics): ${r.server.eventloop_delay_p99_ms ? JSON.stringify(r.server.eventloop_delay_p99_ms) : "n/a (no /metrics)"}`);
    out.push(`  load generator event-loop delay ms (worst worker, steady): ${JSON.stringify(r.load_generator.worker_eventloop_delay_ms.steady)}; orchestrator ${JSON.stringify(r.load_generator.orchestrator_eventloop_delay_ms.steady)}`);
    out.push(`  CPU % of one core (of ${r.cpu_percent_of_one_core.cores * 100} available), steady: ${JSON.stringify(r.cpu_percent_of_one_core.steady ?? null)}`);
    out.push(`  memory per client (idle, subscribed, after GC): heap ${fmt(r.memory_per_client.heap_kb)} KB, RSS ${fmt(r.memory_per_client.rss_kb)} KB`);
    const ref = r.memory_reference;
    if (ref)
      out.push(
        `  reference, plain Socket.IO server (same clients, same run): heap ${fmt(ref.heap_kb)} KB, RSS ${fmt(ref.rss_kb)} KB per client; Convene / reference: heap ${fmt(ref.ratio_heap)}, RSS ${fmt(ref.ratio_rss)}; server CPU ${fmt(ref.server_cpu_ms_per_connect)} ms per connect + subscribe`,
      );
    out.push(`  connect storm: ${r.connect_storm.seconds} s (${r.connect_storm.connects_per_s}/s), server CPU ${fmt(r.connect_storm.server_cpu_ms_per_connect)} ms per connect + subscribe`);
    out.push(`  server CPU µs per delivery: warm-up ${fmt(r.server_cpu_us_per_delivery.warmup)}, steady ${fmt(r.server_cpu_us_per_delivery.steady)}`);
    for (const x of r.sweep)
      out.push(
        `  sweep ${x.deliveries_per_s} deliveries/s (${x.posts_per_s} posts/s, achieved ${fmt(x.achieved_deliveries_per_s)}): delivery p50 ${fmt(x.delivery_ms.p50)} p99 ${fmt(x.delivery_ms.p99)} max ${fmt(x.delivery_ms.max)} ms, lost ${x.lost}, failed posts ${x.failed_posts}, server CPU ${fmt(x.server_cpu_us_per_delivery)} µs/delivery`,
      );
    out.push(`  total ${r.total_seconds} s`);
  }
  out.push(`  result: ${report.ok ? "OK" : `FAILED${report.error ? `: ${report.error}` : " (see above)"}`}`);
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
  const cleanup = new Cleanup();
  const report: Report = {
    ok: false,
    error: null,
    config: {
      clients: options.clients,
      channels: options.channels,
      rate: options.rate,
      duration_s: options.duration,
      via: options.via,
      redis: options.redis,
      processes: options.processes ?? 1,
      workers: options.workers,
      warmup_rate: options.warmupRate,
      warmup_s: options.warmupSeconds,
      server_env: options.serverEnv,
      server_node_args: options.serverNodeArgs,
      rates: options.rates,
      sweep_s: options.sweepSeconds,
      heap_probe: options.heap,
      quick: options.quick,
      node: process.version,
      cpus: os.cpus().length,
    },
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: cleaning up`);
    void cleanup.run().then(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let success = false;
  let crashed = false;
  try {
    success = await run(options, cleanup, report);
    if (options.memoryReference) {
      const reference = new Cleanup();
      try {
        const measured = await measureReferenceMemory(options, reference);
        const ours = (report as { memory_per_client?: { heap_kb: number | null; rss_kb: number | null } }).memory_per_client;
        const ratio = (a: number | null | undefined, b: unknown): number | null => (typeof a === "number" && typeof b === "number" && b > 0 ? round(a / b, 2) : null);
        report.memory_reference = { ...measured, ratio_heap: ratio(ours?.heap_kb, measured.heap_kb), ratio_rss: ratio(ours?.rss_kb, measured.rss_kb) };
      } finally {
        await reference.run();
      }
    }
    report.ok = success;
  } catch (error) {
    crashed = true;
    report.error = errorMessage(error);
    log(`error: ${report.error}`);
  }
  if (interrupted) return;
  await cleanup.run();
  printSummary(report);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(crashed ? 2 : success ? 0 : 1);
}

void main();
