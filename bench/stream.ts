/**
 * Video streaming benchmark: `npm run bench:stream [-- options]`. See docs/benchmarks.md.
 *
 * Creates a fresh Postgres database, starts the compiled server on it, uploads a file of
 * random bytes (an MP4 `ftyp` box first, so it passes the content check) through
 * POST /videos, then starts nginx (Debian's package) on another loopback port with
 * `sendfile on`, serving the very file Convene stored. Both are read the same way: C
 * keep-alive connections, each asking for 1 MiB at a random offset again and again
 * (Convene through the signed stream_url), in alternating rounds so machine noise falls
 * on both. Prints the throughputs and their ratio; the last line is one JSON object.
 * Everything it starts is stopped, and the database dropped, on success and on failure.
 *
 * Exit code: 0 all good; 1 a request failed or answered wrongly; 2 the benchmark itself failed.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { errorMessage, percentiles, round, type Percentiles } from "./chat-shared";
import { UsageError, sleep, log, elapsed, assertLoopback, freePort, treeCpuSeconds } from "./lib/util";
import { Cleanup, terminate } from "./lib/cleanup";
import { startServer } from "./lib/server";
import { createDatabase } from "./lib/fixtures";

const MiB = 1024 * 1024;

interface Options {
  sizeMib: number;
  rangeMib: number;
  concurrency: number;
  seconds: number;
  rounds: number;
  nginxWorkers: number;
  adminDatabaseUrl: string;
  serverEnv: Record<string, string>;
  serverNodeArgs: string[];
  quick: boolean;
}

const USAGE = `usage: npm run bench:stream -- [options]
  --quick              a 64 MiB file, 2 rounds of 2 s per side (a few seconds)
  --size-mib N         the file's size (default 256)
  --range-mib R        each request's range (default 1)
  --concurrency C      keep-alive connections (default 16)
  --seconds S          length of one round per side (default 5)
  --rounds K           alternating rounds, Convene then nginx (default 3)
  --nginx-workers W    nginx worker_processes (default 1: one process each, like PROCESSES=1)
  --server-env K=V     extra environment for the server, repeatable
  --server-node-arg F  extra node flag for the server, repeatable (e.g. --cpu-prof, --cpu-prof-dir=/tmp/p)
env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: "boolean", default: false },
      "size-mib": { type: "string" },
      "range-mib": { type: "string" },
      concurrency: { type: "string" },
      seconds: { type: "string" },
      rounds: { type: "string" },
      "nginx-workers": { type: "string" },
      "server-env": { type: "string", multiple: true },
      "server-node-arg": { type: "string", multiple: true },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min} (got ${raw})`);
    return n;
  };
  const quick = values.quick === true;
  const serverEnv: Record<string, string> = {};
  for (const pair of values["server-env"] ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new UsageError(`--server-env takes KEY=VALUE (got ${pair})`);
    serverEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const sizeMib = int("size-mib", values["size-mib"], quick ? 64 : 256, 2);
  const rangeMib = int("range-mib", values["range-mib"], 1, 1);
  if (rangeMib >= sizeMib) throw new UsageError("--range-mib must be smaller than --size-mib");
  return {
    sizeMib,
    rangeMib,
    concurrency: int("concurrency", values.concurrency, 16, 1),
    seconds: int("seconds", values.seconds, quick ? 2 : 5, 1),
    rounds: int("rounds", values.rounds, quick ? 2 : 3, 1),
    nginxWorkers: int("nginx-workers", values["nginx-workers"], 1, 1),
    adminDatabaseUrl: process.env.BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres",
    serverEnv,
    serverNodeArgs: values["server-node-arg"] ?? [],
    quick,
  };
}

/** A file of random bytes that starts with an MP4 `ftyp` box and a `free` box over the rest. */
async function writeVideo(file: string, bytes: number): Promise<void> {
  const out = fs.createWriteStream(file);
  const head = Buffer.alloc(24);
  head.writeUInt32BE(16, 0);
  head.write("ftypisom", 4, "latin1");
  head.writeUInt32BE(bytes - 16, 16);
  head.write("free", 20, "latin1");
  for (let written = 0; written < bytes; ) {
    const chunk = randomBytes(Math.min(MiB, bytes - written));
    if (written === 0) head.copy(chunk);
    written += chunk.length;
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

/** POST /videos with the file streamed from disk. */
function upload(url: string, token: string, file: string, bytes: number): Promise<{ id: string; stream_url: string }> {
  const boundary = `bench-${randomBytes(8).toString("hex")}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nbench\r\n--${boundary}\r\nContent-Disposition: form-data; name="video"; filename="bench.mp4"\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const u = new URL(`${url}/videos`);
  return new Promise((resolve, reject) => {
    const req = http.request(u, { method: "POST", headers: {
      authorization: `Bearer ${token}`, "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": String(head.length + bytes + tail.length) } });
    req.on("error", reject);
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => (res.statusCode === 201 ? resolve(JSON.parse(body)) : reject(new Error(`POST /videos answered ${res.statusCode}: ${body.slice(0, 300)}`))));
    });
    req.write(head);
    const source = fs.createReadStream(file, { highWaterMark: MiB });
    source.on("error", reject);
    source.on("end", () => req.end(tail));
    source.pipe(req, { end: false });
  });
}

interface Side {
  name: string;
  /** The URL of the file; a range is added per request. */
  url: string;
  bytes: number;
  requests: number;
  errors: Record<string, number>;
  latencyMs: number[];
  seconds: number;
  cpuSeconds: number;
  pid: number;
}

/** C connections asking for random ranges for `seconds`. */
async function load(side: Side, size: number, rangeBytes: number, concurrency: number, seconds: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const until = performance.now() + seconds * 1000;
  const cpuBefore = treeCpuSeconds(side.pid) ?? 0;
  const started = performance.now();
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const start = Math.floor(Math.random() * (size - rangeBytes + 1));
      const end = start + rangeBytes - 1;
      const t0 = performance.now();
      const fail = (why: string) => {
        side.errors[why] = (side.errors[why] ?? 0) + 1;
        resolve();
      };
      const req = http.get(side.url, { agent, headers: { range: `bytes=${start}-${end}` } }, (res) => {
        let got = 0;
        res.on("data", (d: Buffer) => (got += d.length));
        res.on("error", () => fail("response error"));
        res.on("end", () => {
          if (res.statusCode !== 206) return fail(`status ${res.statusCode}`);
          if (res.headers["content-range"] !== `bytes ${start}-${end}/${size}` || got !== rangeBytes) return fail("wrong range");
          side.bytes += got;
          side.requests++;
          side.latencyMs.push(performance.now() - t0);
          resolve();
        });
      });
      req.on("error", (error) => fail(errorMessage(error)));
    });
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) await one();
  }));
  side.seconds += (performance.now() - started) / 1000;
  side.cpuSeconds += (treeCpuSeconds(side.pid) ?? cpuBefore) - cpuBefore;
  agent.destroy();
}

async function startNginx(root: string, tmp: string, workers: number, cleanup: Cleanup): Promise<{ url: string; pid: number }> {
  const nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => fs.existsSync(p));
  if (!nginx) throw new Error("nginx is missing: apt-get update && apt-get install -y nginx");
  const port = await freePort();
  const prefix = path.join(tmp, "nginx");
  fs.mkdirSync(prefix, { recursive: true });
  const conf = path.join(prefix, "nginx.conf");
  // Its own everything: no system config, pid file, logs or temp paths are touched.
  fs.writeFileSync(conf, `daemon off;
master_process on;
worker_processes ${workers};
${process.getuid?.() === 0 ? "user root;" : ""}
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  types { video/mp4 mp4; }
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`);
  const check = spawnSync(nginx, ["-t", "-q", "-p", prefix, "-c", conf], { encoding: "utf8" });
  if (check.status !== 0) throw new Error(`nginx -t failed: ${check.stderr}`);
  const child = spawn(nginx, ["-p", prefix, "-c", conf], { stdio: ["ignore", "inherit", "inherit"] });
  cleanup.add("stop nginx", () => terminate(child, "nginx", 5000));
  const url = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 10_000; ; ) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}); see ${prefix}/error.log`);
    try {
      await (await fetch(url, { signal: AbortSignal.timeout(1000) })).arrayBuffer();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error("nginx did not answer within 10 s");
      await sleep(100);
    }
  }
  log(`nginx ${spawnSync(nginx, ["-v"], { encoding: "utf8" }).stderr.trim()} pid ${child.pid} on ${url}, sendfile on, ${workers} worker(s)`);
  return { url, pid: child.pid ?? -1 };
}

interface SideReport {
  mib_per_s: number;
  requests_per_s: number;
  requests: number;
  errors: Record<string, number>;
  latency_ms: Percentiles;
  cpu_percent_of_one_core: number;
}

function summarise(side: Side): SideReport {
  const lat = percentiles(Float64Array.from(side.latencyMs));
  return {
    mib_per_s: round(side.bytes / MiB / side.seconds, 1),
    requests_per_s: round(side.requests / side.seconds, 1),
    requests: side.requests,
    errors: side.errors,
    latency_ms: Object.fromEntries(Object.entries(lat).map(([k, v]) => [k, typeof v === "number" && k !== "count" ? round(v, 2) : v])) as unknown as Percentiles,
    cpu_percent_of_one_core: round((side.cpuSeconds / side.seconds) * 100, 0),
  };
}

async function run(options: Options, cleanup: Cleanup, report: Record<string, unknown>): Promise<boolean> {
  const started = performance.now();
  const runId = randomBytes(4).toString("hex");
  assertLoopback(options.adminDatabaseUrl, "BENCH_DATABASE_URL");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "convene-bench-stream-"));
  cleanup.add("remove the temporary directory", async () => fs.rmSync(tmp, { recursive: true, force: true }));
  // nginx's workers may run as another user: they must be able to reach the file.
  fs.chmodSync(tmp, 0o755);
  const uploads = path.join(tmp, "uploads");
  fs.mkdirSync(uploads, { mode: 0o755 });

  const databaseUrl = await createDatabase(options.adminDatabaseUrl, `convene_bench_stream_${runId}`, cleanup);
  const port = await freePort();
  const ormConfig = path.join(tmp, "ormconfig.json");
  fs.writeFileSync(ormConfig, "{}\n");
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ["REDIS_URL", "PROCESSES", "PUBLIC_URL", "PGLITE_DATA_DIR"]) delete env[name];
  Object.assign(env, {
    NODE_ENV: "production", PORT: String(port), HOST: "127.0.0.1", DATABASE_URL: databaseUrl,
    JWT_SECRET: randomBytes(36).toString("base64url"), LOG_LEVEL: "warn", RATE_LIMIT_AUTH_PER_MINUTE: "0",
    DATA_DIR: path.join(tmp, "data"), UPLOADS_DIR: uploads, ORMCONFIG: ormConfig, SHUTDOWN_GRACE_SECONDS: "5",
    MAX_UPLOAD_BYTES: String((options.sizeMib + 1) * MiB), REDIS_PREFIX: `convene-bench-${runId}:`,
    ...options.serverEnv,
  });
  const server = await startServer({ nodeArgs: options.serverNodeArgs, redisUrl: null }, env, port, cleanup);

  const register = await fetch(`${server.url}/auth/register`, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: `bench_${runId}`, password: randomBytes(12).toString("base64url") }) });
  if (register.status !== 201) throw new Error(`POST /auth/register answered ${register.status}: ${(await register.text()).slice(0, 300)}`);
  const { token } = (await register.json()) as { token: string };

  const size = options.sizeMib * MiB;
  const source = path.join(tmp, "source.mp4");
  let t0 = performance.now();
  await writeVideo(source, size);
  log(`wrote ${options.sizeMib} MiB of random bytes in ${elapsed(t0)}`);
  t0 = performance.now();
  const video = await upload(server.url, token, source, size);
  const uploadSeconds = (performance.now() - t0) / 1000;
  fs.rmSync(source);
  log(`uploaded it through POST /videos in ${elapsed(t0)} (${round(options.sizeMib / uploadSeconds, 0)} MiB/s)`);
  const stored = fs.readdirSync(uploads).find((n) => n.startsWith(video.id));
  if (!stored) throw new Error(`no file for video ${video.id} in ${uploads}`);
  fs.chmodSync(path.join(uploads, stored), 0o644);
  assertLoopback(video.stream_url, "stream_url");

  const nginx = await startNginx(uploads, tmp, options.nginxWorkers, cleanup);
  const sides: Side[] = [
    { name: "convene", url: video.stream_url, pid: server.pid },
    { name: "nginx", url: `${nginx.url}/${stored}`, pid: nginx.pid },
  ].map((s) => ({ ...s, bytes: 0, requests: 0, errors: {}, latencyMs: [], seconds: 0, cpuSeconds: 0 }));
  const rangeBytes = options.rangeMib * MiB;
  // Warm up both (page cache, JIT, connection setup), then alternate.
  for (const side of sides) await load({ ...side, errors: {}, latencyMs: [] }, size, rangeBytes, options.concurrency, 1);
  for (let round_ = 1; round_ <= options.rounds; round_++) {
    for (const side of sides) {
      await load(side, size, rangeBytes, options.concurrency, options.seconds);
      server.assertAlive();
      log(`round ${round_}: ${side.name} ${round(side.bytes / MiB / side.seconds, 0)} MiB/s so far`);
    }
  }
  const [convene, nginxReport] = sides.map(summarise);
  const ratio = round(convene.mib_per_s / nginxReport.mib_per_s, 3);
  Object.assign(report, {
    upload_mib_per_s: round(options.sizeMib / uploadSeconds, 1),
    convene,
    nginx: nginxReport,
    ratio,
    goal: 0.5,
    meets_goal: ratio >= 0.5,
    seconds: round((performance.now() - started) / 1000, 1),
  });
  const failed = sides.some((s) => Object.keys(s.errors).length > 0);
  if (failed) report.error = `request failures: ${JSON.stringify(Object.fromEntries(sides.map((s) => [s.name, s.errors])))}`;
  return !failed;
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
  const report: Record<string, unknown> = {
    ok: false,
    error: null,
    config: { size_mib: options.sizeMib, range_mib: options.rangeMib, concurrency: options.concurrency, seconds_per_round: options.seconds,
      rounds: options.rounds, nginx_workers: options.nginxWorkers, server_env: options.serverEnv, server_node_args: options.serverNodeArgs, quick: options.quick, node: process.version, cpus: os.cpus().length },
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
  const c = report.convene as SideReport | undefined;
  const n = report.nginx as SideReport | undefined;
  if (c && n) {
    process.stdout.write(
      `stream: ${options.rangeMib} MiB random ranges of a ${options.sizeMib} MiB file, ${options.concurrency} connections, ${options.rounds} x ${options.seconds} s per side\n` +
        `  convene: ${c.mib_per_s} MiB/s, ${c.requests_per_s} req/s, p50 ${c.latency_ms.p50} ms, p99 ${c.latency_ms.p99} ms, CPU ${c.cpu_percent_of_one_core}% of one core\n` +
        `  nginx:   ${n.mib_per_s} MiB/s, ${n.requests_per_s} req/s, p50 ${n.latency_ms.p50} ms, p99 ${n.latency_ms.p99} ms, CPU ${n.cpu_percent_of_one_core}% of one core\n` +
        `  ratio convene/nginx: ${report.ratio} (goal >= 0.5)\n`,
    );
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(crashed ? 2 : success ? 0 : 1);
}

void main();
