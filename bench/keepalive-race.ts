/**
 * The keep-alive race: `npm run bench:keepalive [-- options]`. See docs/reliability.md.
 *
 * Starts the compiled server (embedded database, nothing else needed) and, for each client
 * kind, opens connections with one POST each, lets every connection idle for a chosen time
 * around the server's keep-alive timeout, and sends a second POST on it. A reset (the
 * server closed the idle socket just as the request was sent) is counted, by error code.
 * Every HTTP answer counts as answered: only transport failures matter here.
 *
 * Clients: `agent` (node:http Agent with keepAlive, as most Node clients), `agent-hint`
 * (the same with a `timeout`, which makes Node 20's Agent honour the server's
 * `Keep-Alive: timeout=N` hint), `agent-retry` (`agent`, retrying once when a reused
 * socket was reset, as a client posting with an Idempotency-Key safely may), `fetch`
 * (Node's fetch, undici). `--busy F` keeps the client's event loop busy a fraction F of the
 * time, as a load generator driving thousands of clients is. Then `--storm N` (default 2000)
 * opens N new connections at once, one POST each, three times: the other suspect, a
 * listen backlog overflowing in a connect storm.
 *
 * Progress goes to stderr; the summary goes to stdout and its last line is one JSON object.
 */
import http from "node:http";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { errorMessage } from "./chat-shared";
import { Cleanup } from "./lib/cleanup";
import { serverEnvironment, startServer } from "./lib/server";
import { freePort, log, sleep } from "./lib/util";

type Client = "agent" | "agent-hint" | "agent-retry" | "fetch";
const CLIENTS: Client[] = ["agent", "agent-hint", "agent-retry", "fetch"];
/**
 * Idle windows (ms). The server says `Keep-Alive: timeout=5` and, on Node 20.20, closes an
 * idle socket 1 s later (its keep-alive buffer): around the announced 5 s, just around
 * the real 6 s (1 ms steps), and after it.
 */
const WINDOWS: Array<[number, number]> = [
  [4900, 5100],
  [5990, 6040],
  [6100, 6300],
];

interface Outcome {
  ok: boolean;
  /** The error code of a transport failure. */
  error?: string;
  retried?: boolean;
}

const BODY = "{}";
const errorCode = (error: unknown): string => {
  const e = error as { code?: string; cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.code ?? e.cause?.message ?? errorMessage(error);
};

function postWithAgent(url: URL, agent: http.Agent): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": BODY.length } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
    });
    req.on("error", (error) => reject(Object.assign(error, { reused: req.reusedSocket })));
    req.end(BODY);
  });
}

/** One connection: a POST, `idleMs` of nothing, a second POST on the same connection. */
async function trial(client: Client, url: URL, idleMs: number): Promise<Outcome> {
  if (client === "fetch") {
    const post = () => fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: BODY }).then((r) => r.arrayBuffer());
    await post();
    await sleep(idleMs);
    return post().then(
      () => ({ ok: true }),
      (error: unknown) => ({ ok: false, error: errorCode(error) }),
    );
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1, ...(client === "agent-hint" ? { timeout: 30_000 } : {}) });
  try {
    await postWithAgent(url, agent);
    await sleep(idleMs);
    try {
      await postWithAgent(url, agent);
      return { ok: true };
    } catch (error) {
      const reset = (error as { reused?: boolean }).reused && ["ECONNRESET", "EPIPE"].includes(errorCode(error));
      if (client !== "agent-retry" || !reset) return { ok: false, error: errorCode(error) };
      // The server closed a reused socket: nothing was processed, so one retry is safe (with an Idempotency-Key, for any post).
      return postWithAgent(url, agent).then(
        () => ({ ok: true, retried: true }),
        (again: unknown) => ({ ok: false, error: errorCode(again), retried: true }),
      );
    }
  } finally {
    agent.destroy();
  }
}

/** A connect storm: `count` new connections at once, one POST each; failures by error code. */
async function storm(url: URL, count: number): Promise<Record<string, number>> {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const outcomes = await Promise.all(
    Array.from({ length: count }, () =>
      postWithAgent(url, agent).then(
        () => "ok",
        (error: unknown) => errorCode(error),
      ),
    ),
  );
  agent.destroy();
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
  return counts;
}

/** Keeps the event loop busy `fraction` of the time, in 40 ms blocks, as a loaded load generator is. */
function keepBusy(fraction: number): () => void {
  if (fraction <= 0) return () => undefined;
  const blockMs = 40;
  const timer = setInterval(() => {
    const until = performance.now() + blockMs;
    while (performance.now() < until);
  }, Math.round(blockMs / fraction));
  return () => clearInterval(timer);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { trials: { type: "string", default: "50" }, busy: { type: "string", default: "0" }, storm: { type: "string", default: "2000" } } });
  const trials = Number(values.trials);
  const stormSize = Number(values.storm);
  const busyLevels = values.busy.split(",").map(Number);
  const cleanup = new Cleanup();
  process.on("SIGINT", () => void cleanup.run().then(() => process.exit(130)));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "convene-keepalive-"));
  cleanup.add("remove the temporary directory", async () => fs.rmSync(tmp, { recursive: true, force: true }));
  try {
    const port = await freePort();
    const env = serverEnvironment({ tmp, port, databaseUrl: "", secret: randomBytes(32).toString("hex"), runId: randomBytes(4).toString("hex"), redisUrl: null, processes: null, extra: { PGLITE_DATA_DIR: "memory://" } });
    delete env.DATABASE_URL;
    const server = await startServer({ nodeArgs: [], redisUrl: null }, env, port, cleanup);
    const url = new URL(`${server.url}/health`);
    const hint = await new Promise<string>((resolve, reject) => {
      const agent = new http.Agent({ keepAlive: true });
      http.get(url, { agent }, (res) => {
        res.resume();
        resolve(`Connection: ${res.headers.connection}, Keep-Alive: ${res.headers["keep-alive"]}`);
        agent.destroy();
      }).on("error", reject);
    });
    log(`the server answers a kept-alive request with ${hint}`);
    const rows: Array<{ client: Client; busy: number; idle: string; trials: number; ok: number; retried: number; failed: Record<string, number> }> = [];
    for (const busy of busyLevels)
      for (const client of CLIENTS)
        for (const [from, to] of WINDOWS) {
          const stop = keepBusy(busy);
          const outcomes = await Promise.all(Array.from({ length: trials }, (_, i) => trial(client, url, from + ((to - from) * i) / trials)));
          stop();
          const failed: Record<string, number> = {};
          for (const o of outcomes) if (!o.ok) failed[o.error ?? "?"] = (failed[o.error ?? "?"] ?? 0) + 1;
          const row = { client, busy, idle: `${from}-${to} ms`, trials, ok: outcomes.filter((o) => o.ok).length, retried: outcomes.filter((o) => o.retried).length, failed };
          rows.push(row);
          log(`${client.padEnd(11)} busy ${busy}  idle ${row.idle.padEnd(13)} ok ${row.ok}/${trials}${row.retried ? ` (${row.retried} retried)` : ""}  failed ${JSON.stringify(failed)}`);
        }
    // The other suspect: more connections at once than the listen backlog (511) holds.
    const storms: Array<Record<string, number>> = [];
    for (let i = 0; stormSize > 0 && i < 3; i++) {
      storms.push(await storm(url, stormSize));
      log(`connect storm ${i + 1}: ${stormSize} new connections at once, one POST each: ${JSON.stringify(storms[i])}`);
    }
    const total = (client: Client, busy: number) => rows.filter((r) => r.client === client && r.busy === busy);
    console.log(`server: ${hint}`);
    for (const busy of busyLevels)
      for (const client of CLIENTS) {
        const mine = total(client, busy);
        const failures = mine.reduce((n, r) => n + (r.trials - r.ok), 0);
        console.log(`${client.padEnd(11)} busy ${busy}: ${failures} of ${mine.length * trials} second requests failed; retried ${mine.reduce((n, r) => n + r.retried, 0)}`);
      }
    for (const [i, counts] of storms.entries()) console.log(`connect storm ${i + 1} (${stormSize} at once): ${JSON.stringify(counts)}`);
    console.log(JSON.stringify({ server: hint, rows, storms }));
  } finally {
    await cleanup.run();
  }
}

main().catch((error: unknown) => {
  log(`failed: ${errorMessage(error)}`);
  process.exit(2);
});
