/**
 * HTTP throughput benchmark: `npm run bench:http [-- options]`. See docs/benchmarks.md.
 *
 * Starts the compiled server on a fresh Postgres database and, as the reference, a plain
 * Express hello-world (bench/hello-world.ts) as a second process; seeds one channel with
 * messages over REST, then runs autocannon (same connections, same duration, one after
 * the other) against: hello-world GET, `/health`, a history page, hello-world POST, a
 * post, and hello-world GET again (the drift of the reference over the run). Ratios are
 * Convene req/s ÷ hello-world req/s (GETs against the mean of the two GET runs, the post
 * against the hello-world POST).
 *
 * Progress goes to stderr; the summary goes to stdout and its last line is one JSON object.
 * Exit code: 0 all good; 1 a request failed or answered other than 2xx; 2 the benchmark failed.
 */
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { errorMessage, round } from "./chat-shared";
import { UsageError, sleep, log, assertLoopback, freePort, mapLimit, treeCpuSeconds, postgresPids } from "./lib/util";
import { Cleanup, terminate } from "./lib/cleanup";
import { startServer, serverEnvironment } from "./lib/server";
import { createDatabase, createUsers, checkToken, createChannels } from "./lib/fixtures";

interface Options {
  quick: boolean;
  duration: number;
  warmup: number;
  connections: number;
  messages: number;
  limit: number;
  adminDatabaseUrl: string;
  serverEnv: Record<string, string>;
  serverNodeArgs: string[];
}

const USAGE = `usage: npm run bench:http -- [options]
  --quick                  3 s per target, 1 s warm-up each (about 40 s with seeding)
  --duration S             seconds per target (default 10)
  --warmup S               unmeasured seconds before each target (default 2; quick 1)
  --connections C          autocannon connections, the same for every target (default 10)
  --messages N             messages seeded into the channel before the history runs (default 1000)
  --limit L                page size of the history request (default 50)
  --server-env KEY=VALUE   extra environment for the server, repeatable (e.g. DATABASE_POOL_SIZE=20)
  --server-node-arg FLAG   extra node flag for the server, repeatable (e.g. --cpu-prof)
env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: "boolean", default: false },
      duration: { type: "string" },
      warmup: { type: "string" },
      connections: { type: "string" },
      messages: { type: "string" },
      limit: { type: "string" },
      "server-env": { type: "string", multiple: true },
      "server-node-arg": { type: "string", multiple: true },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const number = (name: string, raw: string | undefined, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) throw new UsageError(`--${name} must be an integer >= ${min} (got ${raw})`);
    return value;
  };
  const quick = values.quick === true;
  const serverEnv: Record<string, string> = {};
  for (const pair of values["server-env"] ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new UsageError(`--server-env takes KEY=VALUE (got ${pair})`);
    serverEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    quick,
    duration: number("duration", values.duration, quick ? 3 : 10, 1),
    warmup: number("warmup", values.warmup, quick ? 1 : 2, 0),
    connections: number("connections", values.connections, 10, 1),
    messages: number("messages", values.messages, 1000, 0),
    limit: number("limit", values.limit, 50, 1),
    adminDatabaseUrl: process.env.BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres",
    serverEnv,
    serverNodeArgs: values["server-node-arg"] ?? [],
  };
}

interface Target {
  name: string;
  /** "hello" for the reference process, "convene" for the server under test. */
  process: "hello" | "convene";
  request: { url: string; method: "GET" | "POST"; headers?: Record<string, string>; body?: string };
}

interface TargetResult {
  name: string;
  requests: number;
  req_per_s: number;
  latency_ms: { mean: number; p50: number; p90: number; p99: number; max: number };
  non_2xx: number;
  errors: number;
  timeouts: number;
  status_codes: Record<string, number>;
  /** CPU during the measured run, % of one core. */
  cpu_percent: { server_under_test: number | null; postgres: number | null; load_generator: number | null };
}

async function measure(target: Target, pids: { hello: number; convene: number }, options: Options): Promise<TargetResult> {
  const request = { ...target.request, connections: options.connections, pipelining: 1, timeout: 10 };
  if (options.warmup > 0) await autocannon({ ...request, duration: options.warmup });
  const pid = pids[target.process];
  const cpuOf = (pidList: number[], tree: boolean): number => pidList.reduce((n, p) => n + (treeCpuSeconds(p, tree) ?? 0), 0);
  const pg = postgresPids();
  const before = { server: treeCpuSeconds(pid), pg: cpuOf(pg, false), self: treeCpuSeconds(process.pid, false), at: performance.now() };
  const result = await autocannon({ ...request, duration: options.duration });
  const seconds = (performance.now() - before.at) / 1000;
  const pgAfter = postgresPids();
  const after = { server: treeCpuSeconds(pid), pg: cpuOf(pgAfter, false), self: treeCpuSeconds(process.pid, false) };
  const pct = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : round(((a - b) / seconds) * 100, 0));
  const statusCodes: Record<string, number> = {};
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stat.count;
  const out: TargetResult = {
    name: target.name,
    requests: result.requests.total,
    req_per_s: round(result.requests.total / result.duration, 0),
    latency_ms: { mean: round(result.latency.mean), p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
    non_2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    status_codes: statusCodes,
    cpu_percent: { server_under_test: pct(after.server, before.server), postgres: target.process === "convene" ? pct(after.pg, before.pg) : null, load_generator: pct(after.self, before.self) },
  };
  log(`${target.name}: ${out.req_per_s} req/s, latency p50 ${out.latency_ms.p50} ms p99 ${out.latency_ms.p99} ms, non-2xx ${out.non_2xx}, errors ${out.errors}; CPU ${JSON.stringify(out.cpu_percent)}`);
  return out;
}

async function startHelloWorld(cleanup: Cleanup): Promise<{ url: string; pid: number }> {
  const port = await freePort();
  const child = fork(path.join(__dirname, "hello-world.js"), [], { env: { ...process.env, PORT: String(port), NODE_ENV: "production" }, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  cleanup.add("stop the hello-world", () => terminate(child, "hello-world", 5000));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the hello-world did not listen within 10 s")), 10_000);
    child.once("message", () => {
      clearTimeout(timer);
      resolve();
    });
    child.once("exit", (code) => reject(new Error(`the hello-world exited (code ${code})`)));
  });
  return { url: `http://127.0.0.1:${port}`, pid: child.pid ?? -1 };
}

interface Report {
  ok: boolean;
  error: string | null;
  config: Record<string, unknown>;
  [key: string]: unknown;
}

async function run(options: Options, cleanup: Cleanup, report: Report): Promise<boolean> {
  const runId = randomBytes(4).toString("hex");
  assertLoopback(options.adminDatabaseUrl, "BENCH_DATABASE_URL");
  const secret = randomBytes(36).toString("base64url");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "convene-bench-http-"));
  cleanup.add("remove the temporary directory", async () => fs.rmSync(tmp, { recursive: true, force: true }));
  const databaseName = `convene_bench_${runId}`;
  const databaseUrl = await createDatabase(options.adminDatabaseUrl, databaseName, cleanup);
  log(`created database ${databaseName}`);
  const port = await freePort();
  const env = serverEnvironment({ tmp, port, databaseUrl, secret, runId, redisUrl: null, processes: null, extra: options.serverEnv });
  const server = await startServer({ nodeArgs: options.serverNodeArgs, redisUrl: null }, env, port, cleanup);
  const hello = await startHelloWorld(cleanup);
  log(`hello-world pid ${hello.pid} on ${hello.url}`);

  const [user] = await createUsers(databaseUrl, 1, secret, 86_400);
  await checkToken(server.url, user);
  const [channel] = await createChannels(server.url, 1, user.token, runId);
  const auth = { authorization: `Bearer ${user.token}` };
  const json = { "content-type": "application/json" };
  const messagesUrl = `${server.url}/chat/rooms/${encodeURIComponent(channel.id)}/messages`;
  const seedStarted = performance.now();
  await mapLimit(Array.from({ length: options.messages }, (_, i) => i), 8, async (i) => {
    const response = await fetch(messagesUrl, { method: "POST", headers: { ...auth, ...json }, body: JSON.stringify({ body: `seed message ${i}` }), signal: AbortSignal.timeout(10_000) });
    const text = await response.text();
    if (response.status !== 201) throw new Error(`seeding: POST ${messagesUrl} answered ${response.status}: ${text.slice(0, 300)}`);
  });
  log(`seeded ${options.messages} messages over REST in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
  const historyUrl = `${messagesUrl}?limit=${options.limit}`;
  const page = await fetch(historyUrl, { headers: auth, signal: AbortSignal.timeout(10_000) });
  const pageBody = (await page.json()) as { items?: unknown[] };
  const pageSize = Array.isArray(pageBody.items) ? pageBody.items.length : null;
  if (page.status !== 200 || pageSize !== Math.min(options.limit, options.messages))
    throw new Error(`GET ${historyUrl} answered ${page.status} with ${pageSize} items, expected ${Math.min(options.limit, options.messages)}`);
  const postBody = JSON.stringify({ body: "a benchmark post of about the size of a chat line" });

  const targets: Target[] = [
    { name: "hello_get", process: "hello", request: { url: `${hello.url}/`, method: "GET" } },
    { name: "health", process: "convene", request: { url: `${server.url}/health`, method: "GET" } },
    { name: "history", process: "convene", request: { url: historyUrl, method: "GET", headers: auth } },
    { name: "hello_post", process: "hello", request: { url: `${hello.url}/`, method: "POST", headers: json, body: postBody } },
    { name: "post", process: "convene", request: { url: messagesUrl, method: "POST", headers: { ...auth, ...json }, body: postBody } },
    { name: "hello_get_again", process: "hello", request: { url: `${hello.url}/`, method: "GET" } },
  ];
  const pids = { hello: hello.pid, convene: server.pid };
  const results: Record<string, TargetResult> = {};
  for (const target of targets) {
    server.assertAlive();
    results[target.name] = await measure(target, pids, options);
    await sleep(500);
  }

  const helloGet = (results.hello_get.req_per_s + results.hello_get_again.req_per_s) / 2;
  const ratio = (a: number, b: number): number | null => (b > 0 ? round(a / b, 2) : null);
  const latencyRatio = (a: TargetResult, b: TargetResult, q: "p50" | "p99"): number | null => ratio(a.latency_ms[q], Math.max(1, b.latency_ms[q]));
  const ratios = {
    health_to_hello_get: ratio(results.health.req_per_s, helloGet),
    history_to_hello_get: ratio(results.history.req_per_s, helloGet),
    post_to_hello_post: ratio(results.post.req_per_s, results.hello_post.req_per_s),
    // autocannon's latencies are whole milliseconds: a reference below 1 ms counts as 1.
    latency_p50: { health: latencyRatio(results.health, results.hello_get, "p50"), history: latencyRatio(results.history, results.hello_get, "p50"), post: latencyRatio(results.post, results.hello_post, "p50") },
    latency_p99: { health: latencyRatio(results.health, results.hello_get, "p99"), history: latencyRatio(results.history, results.hello_get, "p99"), post: latencyRatio(results.post, results.hello_post, "p99") },
    reference_drift: ratio(results.hello_get_again.req_per_s, results.hello_get.req_per_s),
  };
  Object.assign(report, { seeded_messages: options.messages, page_size: pageSize, targets: results, hello_get_mean_req_per_s: round(helloGet, 0), ratios, server: { pid: server.pid, log_lines: server.lineCount } });
  return Object.values(results).every((r) => r.non_2xx === 0 && r.errors === 0 && r.timeouts === 0);
}

function printSummary(report: Report): void {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a printing view of the report built above
  const r = report as Record<string, any>;
  const out = ["", "Convene HTTP benchmark (autocannon)", `  config: ${JSON.stringify(report.config)}`];
  if (r.targets) {
    for (const t of Object.values(r.targets) as TargetResult[])
      out.push(
        `  ${t.name.padEnd(16)} ${String(t.req_per_s).padStart(7)} req/s  latency ms p50 ${t.latency_ms.p50} p99 ${t.latency_ms.p99} max ${t.latency_ms.max}  non-2xx ${t.non_2xx} errors ${t.errors}  CPU % ${JSON.stringify(t.cpu_percent)}`,
      );
    const x = r.ratios;
    out.push(`  ratios (req/s ÷ hello-world): /health ${x.health_to_hello_get}, history ${x.history_to_hello_get}, post ${x.post_to_hello_post} (÷ hello-world POST)`);
    out.push(`  latency ratios p50: ${JSON.stringify(x.latency_p50)}; p99: ${JSON.stringify(x.latency_p99)}`);
    out.push(`  hello-world drift over the run (second GET run ÷ first): ${x.reference_drift}`);
  }
  out.push(`  result: ${report.ok ? "OK" : `FAILED${report.error ? `: ${report.error}` : " (a request failed or was not 2xx)"}`}`);
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
      duration_s: options.duration,
      warmup_s: options.warmup,
      connections: options.connections,
      messages: options.messages,
      limit: options.limit,
      server_env: options.serverEnv,
      server_node_args: options.serverNodeArgs,
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
