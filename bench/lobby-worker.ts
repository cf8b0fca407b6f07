/**
 * A subscriber process of the lobby benchmark, forked by bench/lobby.ts (never run by
 * hand). Opens its share of `/lobby_api` WebSockets; each logs in, subscribes, then
 * records the arrival time and version of every event. At the end it turns arrivals into
 * change-to-event latencies with the admin's send times, and counts per subscriber the
 * versions it missed and those that came out of order.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import WebSocket from "ws";
import { errorMessage, Samples } from "./chat-shared";
import { EVENT_TYPES, monotonicMs, type FromLobbyWorker, type Login, type ToLobbyWorker } from "./lobby-shared";

interface Subscriber {
  ws: WebSocket;
  /** The version of the table_list, then of the last event. */
  last: number;
  missing: number;
  outOfOrder: number;
  closed: boolean;
}

let workerId = -1;
const subscribers: Subscriber[] = [];
const arrivalVersion = new Samples();
const arrivalTime = new Samples();
let events = 0;
let malformed = 0;
let subscribed = 0;
let failed = 0;
const lag = monitorEventLoopDelay({ resolution: 10 });

function send(message: FromLobbyWorker): void {
  if (process.connected) process.send?.(message);
}

/** Opens one subscriber: open, login, subscribe_tables; resolves once its table_list came. */
function connect(url: string, login: Login, timeoutMs: number): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => fail("timeout"), timeoutMs);
    let state: "open" | "login" | "subscribe" | "live" = "open";
    const subscriber: Subscriber = { ws, last: 0, missing: 0, outOfOrder: 0, closed: false };
    function fail(reason: string): void {
      clearTimeout(timer);
      ws.terminate();
      reject(new Error(reason));
    }
    ws.on("open", () => {
      state = "login";
      ws.send(JSON.stringify({ $type: "login", ...login }));
    });
    ws.on("message", (data) => {
      const now = monotonicMs();
      let message: { $type?: unknown; version?: unknown };
      try {
        message = JSON.parse(data.toString()) as typeof message;
      } catch {
        malformed++;
        return;
      }
      if (state === "live") {
        const version = message.version;
        if (typeof version !== "number" || !EVENT_TYPES.has(message.$type as string)) {
          malformed++;
          return;
        }
        events++;
        arrivalVersion.push(version);
        arrivalTime.push(now);
        if (version <= subscriber.last) subscriber.outOfOrder++;
        else {
          subscriber.missing += version - subscriber.last - 1;
          subscriber.last = version;
        }
      } else if (state === "login") {
        if (message.$type !== "login_successful") return fail(`login: ${String(message.$type)}`);
        state = "subscribe";
        ws.send(JSON.stringify({ $type: "subscribe_tables" }));
      } else if (state === "subscribe") {
        if (message.$type !== "table_list" || typeof message.version !== "number") return fail(`subscribe: ${String(message.$type)}`);
        state = "live";
        subscriber.last = message.version;
        clearTimeout(timer);
        resolve(subscriber);
      }
    });
    ws.on("close", () => {
      subscriber.closed = true;
      if (state !== "live") fail("closed");
    });
    ws.on("error", (error) => {
      if (state !== "live") fail(error.message.slice(0, 80));
    });
  });
}

async function start(init: Extract<ToLobbyWorker, { type: "init" }>): Promise<void> {
  workerId = init.workerId;
  const failures: Record<string, number> = {};
  const connectMs = new Samples();
  let next = 0;
  const progress = setInterval(() => send({ type: "progress", workerId, subscribed, failed, events }), 250);
  const runner = async (): Promise<void> => {
    while (next < init.logins.length) {
      const login = init.logins[next++];
      const started = monotonicMs();
      try {
        subscribers.push(await connect(init.url, login, init.timeoutMs));
        connectMs.push(monotonicMs() - started);
        subscribed++;
      } catch (error) {
        failed++;
        const reason = errorMessage(error);
        failures[reason] = (failures[reason] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(init.concurrency, init.logins.length) }, runner));
  lag.enable();
  send({ type: "ready", workerId, subscribed, failures, connectMs: connectMs.toArray() });
  progress.unref();
}

function collect(sendTimes: Float64Array, firstVersion: number, finalVersion: number): void {
  const versions = arrivalVersion.toArray();
  const times = arrivalTime.toArray();
  const latencies = new Samples();
  for (let i = 0; i < versions.length; i++) {
    const sent = sendTimes[versions[i] - firstVersion];
    if (sent !== undefined && !Number.isNaN(sent)) latencies.push(times[i] - sent);
  }
  let missing = 0;
  let outOfOrder = 0;
  let withProblems = 0;
  let closed = 0;
  for (const s of subscribers) {
    // What never came at the end counts as missing too.
    const tail = Math.max(0, finalVersion - s.last);
    missing += s.missing + tail;
    outOfOrder += s.outOfOrder;
    if (s.missing + tail + s.outOfOrder > 0) withProblems++;
    if (s.closed) closed++;
  }
  send({
    type: "result",
    workerId,
    latencies: latencies.toArray(),
    events,
    missing,
    outOfOrder,
    subscribersWithProblems: withProblems,
    malformed,
    closed,
    lagP99Ms: lag.percentile(99) / 1e6,
    lagMaxMs: lag.max / 1e6,
    rssMb: process.memoryUsage.rss() / 1048576,
  });
}

process.on("message", (raw: unknown) => {
  const message = raw as ToLobbyWorker;
  try {
    if (message.type === "init") void start(message).catch((error: unknown) => send({ type: "fatal", workerId, error: errorMessage(error) }));
    else if (message.type === "steady") lag.reset();
    else if (message.type === "collect") collect(message.sendTimes, message.firstVersion, message.finalVersion);
    else if (message.type === "stop") {
      for (const s of subscribers) s.ws.terminate();
      setTimeout(() => process.exit(0), 100);
    }
  } catch (error) {
    send({ type: "fatal", workerId, error: errorMessage(error) });
  }
});
process.on("disconnect", () => process.exit(0));
