/** The server under test: the compiled server as a child process on a fresh database, ready when /ready answers; its RSS and event-loop sampler. */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import readline from "node:readline";
import WebSocket from "ws";
import { percentiles, round, type Percentiles } from "../chat-shared";
import { sleep, log, elapsed, treeRssBytes, promValue } from "./util";
import { Cleanup, terminate } from "./cleanup";

export class ServerProcess {
  readonly lines: string[] = [];
  lineCount = 0;
  exited: { code: number | null; signal: string | null } | null = null;

  constructor(readonly child: ChildProcess, readonly url: string) {
    const echoLimit = 30;
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      readline.createInterface({ input: stream }).on("line", (line) => {
        this.lineCount++;
        this.lines.push(line);
        if (this.lines.length > 200) this.lines.shift();
        if (this.lineCount <= echoLimit) process.stderr.write(`[server] ${line.slice(0, 1000)}\n`);
        else if (this.lineCount === echoLimit + 1) process.stderr.write("[server] (further server output is counted, not shown)\n");
      });
    }
    child.on("exit", (code, signal) => {
      this.exited = { code, signal };
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Throws if the server died: a benchmark of a dead server measures nothing. */
  assertAlive(): void {
    if (this.exited)
      throw new Error(
        `the server exited (code ${this.exited.code}, signal ${this.exited.signal}); its last output:\n${this.lines.slice(-20).join("\n")}`,
      );
  }
}

/** The server's environment for a bench run: a fresh database, a random secret, no limits, files in `tmp`. */
export function serverEnvironment(o: {
  tmp: string;
  port: number;
  databaseUrl: string;
  secret: string;
  runId: string;
  redisUrl: string | null;
  processes: number | null;
  extra: Record<string, string>;
}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ["REDIS_URL", "PROCESSES", "PUBLIC_URL", "DATABASE_POOL_SIZE", "PGLITE_DATA_DIR", "JWT_TTL_SECONDS"]) delete env[name];
  // The repository's ormconfig.json is not this run's: an empty one means the defaults.
  const ormConfig = path.join(o.tmp, "ormconfig.json");
  fs.writeFileSync(ormConfig, "{}\n");
  Object.assign(env, {
    NODE_ENV: "production",
    PORT: String(o.port),
    HOST: "127.0.0.1",
    DATABASE_URL: o.databaseUrl,
    JWT_SECRET: o.secret,
    LOG_LEVEL: "warn",
    RATE_LIMIT_AUTH_PER_MINUTE: "0",
    RATE_LIMIT_POSTS_PER_MINUTE: "0",
    DATA_DIR: path.join(o.tmp, "data"),
    UPLOADS_DIR: path.join(o.tmp, "uploads"),
    ORMCONFIG: ormConfig,
    SHUTDOWN_GRACE_SECONDS: "5",
    // Nothing balances load in front of a benchmark: no need to keep accepting while draining.
    DRAIN_DELAY_SECONDS: "0",
    REDIS_PREFIX: `convene-bench-${o.runId}:`,
  });
  if (o.redisUrl) env.REDIS_URL = o.redisUrl;
  if (o.processes !== null) env.PROCESSES = String(o.processes);
  Object.assign(env, o.extra);
  return env;
}

export async function startServer(options: { nodeArgs: string[]; redisUrl: string | null }, env: NodeJS.ProcessEnv, port: number, cleanup: Cleanup): Promise<ServerProcess> {
  const root = path.resolve(__dirname, "../../..");
  const main = path.join(root, "dist/src/main.js");
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run npm run build (every npm run bench:* does)`);
  const child = spawn(process.execPath, [...options.nodeArgs, main], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  const server = new ServerProcess(child, `http://127.0.0.1:${port}`);
  cleanup.add("stop the server", () => terminate(child, "server", 15_000));
  const started = performance.now();
  const deadline = Date.now() + 90_000;
  for (;;) {
    server.assertAlive();
    try {
      const response = await fetch(`${server.url}/ready`, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`GET /ready did not answer 200 within 90 s; server output:\n${server.lines.slice(-20).join("\n")}`);
    await sleep(200);
  }
  log(`server pid ${server.pid} ready on ${server.url} after ${elapsed(started)}${options.redisUrl ? ` (REDIS_URL ${options.redisUrl})` : ""}`);
  return server;
}

/** Samples the server's RSS (from /proc) and, when it has GET /metrics, its event-loop delay. */
/**
 * A benchmark's reference server (bench/*-reference.ts, compiled beside this file's
 * parent), started with its inspector on `inspectorPort` when given; resolves once it
 * prints `listening <port>`. Stopped by `cleanup`.
 */
export async function startReferenceServer(script: string, inspectorPort: number | null, cleanup: Cleanup): Promise<{ pid: number; port: number }> {
  const args = [...(inspectorPort === null ? [] : [`--inspect=127.0.0.1:${inspectorPort}`]), path.join(__dirname, "..", script)];
  const child = spawn(process.execPath, args, { env: { ...process.env, PORT: "0" }, stdio: ["ignore", "pipe", "pipe"] });
  readline.createInterface({ input: child.stderr! }).on("line", (line) => {
    if (!/^(Debugger (attached|listening|ending)|For help, see)/.test(line)) process.stderr.write(`[reference] ${line}\n`);
  });
  cleanup.add("stop the reference server", () => terminate(child, "reference server", 5000));
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the reference server exited (${code})`)));
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      const match = /^listening (\d+)$/.exec(line);
      if (match) resolve(Number(match[1]));
    });
  });
  return { pid: child.pid ?? -1, port };
}

export class ServerSampler {
  phase = "idle";
  readonly rssPeakByPhase: Record<string, number> = {};
  readonly lagP99ByPhase: Record<string, number[]> = {};
  rssPeak = 0;
  metricsAvailable = false;
  private timers: NodeJS.Timeout[] = [];
  private scraping = false;

  constructor(private readonly server: ServerProcess) {}

  async start(): Promise<void> {
    try {
      const response = await fetch(`${this.server.url}/metrics`, { signal: AbortSignal.timeout(3000) });
      const text = await response.text();
      this.metricsAvailable = response.status === 200 && promValue(text, "nodejs_eventloop_lag_p99_seconds") !== null;
    } catch {
      this.metricsAvailable = false;
    }
    log(
      this.metricsAvailable
        ? "server has GET /metrics with nodejs_eventloop_lag_p99_seconds: sampling it every 5 s and at phase changes"
        : "server has no usable GET /metrics: server event-loop delay will be reported as null",
    );
    this.sampleRss();
    this.timers.push(setInterval(() => this.sampleRss(), 250));
    // Not more often: prom-client's default metrics list every handle and file descriptor
    // (10,000+ sockets), which costs the server a few ms per scrape.
    if (this.metricsAvailable) this.timers.push(setInterval(() => void this.scrape(), 5000));
  }

  setPhase(phase: string): void {
    // Scrape at the boundary so the next sample covers (mostly) the new phase only.
    if (this.metricsAvailable) void this.scrape();
    this.phase = phase;
  }

  rssNowMb(): number | null {
    const bytes = treeRssBytes(this.server.pid);
    return bytes === null ? null : round(bytes / 1024 / 1024, 1);
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  private sampleRss(): void {
    const bytes = treeRssBytes(this.server.pid);
    if (bytes === null) return;
    this.rssPeak = Math.max(this.rssPeak, bytes);
    this.rssPeakByPhase[this.phase] = Math.max(this.rssPeakByPhase[this.phase] ?? 0, bytes);
  }

  private async scrape(): Promise<void> {
    if (this.scraping) return;
    this.scraping = true;
    const phase = this.phase;
    try {
      const response = await fetch(`${this.server.url}/metrics`, { signal: AbortSignal.timeout(5000) });
      const text = await response.text();
      const p99 = promValue(text, "nodejs_eventloop_lag_p99_seconds");
      // 0 means prom-client's histogram saw no sample since the previous scrape (a very short window).
      if (response.status === 200 && p99 !== null && p99 > 0) (this.lagP99ByPhase[phase] ??= []).push(p99 * 1000);
    } catch {
      /* a missed scrape is not a result */
    } finally {
      this.scraping = false;
    }
  }
}

/**
 * Round trips of a cheap GET, a reference measured alongside the chat traffic: /health
 * touches only the server's event loop, /ready also takes a database connection from the
 * server's pool and runs SELECT 1.
 */
export class HealthProbe {
  phase = "idle";
  readonly samples: Record<string, number[]> = {};
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  failures = 0;

  constructor(private readonly url: string) {}

  start(): void {
    this.timer = setInterval(() => void this.probe(), 100);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async probe(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    const phase = this.phase;
    const started = performance.now();
    try {
      const response = await fetch(this.url, { signal: AbortSignal.timeout(5000) });
      await response.arrayBuffer();
      if (response.status === 200) (this.samples[phase] ??= []).push(performance.now() - started);
      else this.failures++;
    } catch {
      this.failures++;
    } finally {
      this.busy = false;
    }
  }

  /** Sequential probes, for a reference taken while nothing else runs. */
  async burst(phase: string, count: number): Promise<void> {
    const saved = this.phase;
    this.phase = phase;
    for (let i = 0; i < count; i++) await this.probe();
    this.phase = saved;
  }

  stats(phase: string): Percentiles {
    return percentiles(Float64Array.from(this.samples[phase] ?? []));
  }
}

/**
 * The server's heap after a full garbage collection, through the V8 inspector (the server
 * is started with --inspect=127.0.0.1:<port>; no debug hook in the server itself). Only
 * the primary process: with PROCESSES > 1 the heap of the workers is not read.
 */
export class HeapProbe {
  constructor(private readonly inspectorPort: number) {}

  /** Forces a full GC, then reads process.memoryUsage() in the server; null if the inspector does not answer. */
  async afterGc(): Promise<{ heapUsed: number; external: number; rss: number } | null> {
    try {
      const list = (await (await fetch(`http://127.0.0.1:${this.inspectorPort}/json/list`, { signal: AbortSignal.timeout(3000) })).json()) as { webSocketDebuggerUrl?: string }[];
      const target = list[0]?.webSocketDebuggerUrl;
      if (!target) return null;
      const socket = new WebSocket(target);
      await new Promise<void>((resolve, reject) => {
        socket.once("open", () => resolve());
        socket.once("error", reject);
      });
      let nextId = 1;
      const pending = new Map<number, (result: unknown) => void>();
      socket.on("message", (data: Buffer) => {
        const reply = JSON.parse(data.toString()) as { id?: number; result?: unknown };
        if (reply.id !== undefined) pending.get(reply.id)?.(reply.result);
      });
      const call = (method: string, params: object = {}): Promise<unknown> =>
        new Promise((resolve, reject) => {
          const id = nextId++;
          const timer = setTimeout(() => reject(new Error(`${method} timed out`)), 30_000);
          pending.set(id, (result) => {
            clearTimeout(timer);
            resolve(result);
          });
          socket.send(JSON.stringify({ id, method, params }));
        });
      try {
        // Twice: the first collection can leave garbage that finalizers freed.
        await call("HeapProfiler.collectGarbage");
        await call("HeapProfiler.collectGarbage");
        const result = (await call("Runtime.evaluate", { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true })) as { result?: { value?: string } };
        const usage = JSON.parse(result.result?.value ?? "null") as { heapUsed: number; external: number; rss: number } | null;
        return usage;
      } finally {
        socket.close();
      }
    } catch {
      return null;
    }
  }
}
