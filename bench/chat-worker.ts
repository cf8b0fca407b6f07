/**
 * A load worker of the chat benchmark, forked by bench/chat.ts (never run by hand).
 * Holds a share of the Socket.IO clients: connects and subscribes them, makes the posts
 * the orchestrator asks for, and records every `chat:message` it receives. All clients of
 * one channel live in the same worker, so sender and receivers share one clock
 * (performance.now()) and post-to-delivery latency needs no clock synchronisation.
 */
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { io, type Socket } from "socket.io-client";
import {
  errorMessage,
  isPhase,
  Samples,
  type AckReport,
  type FromWorker,
  type LagStats,
  type Phase,
  type PostCommand,
  type ToWorker,
  type WorkerInit,
} from "./chat-shared";

interface Client {
  idx: number;
  token: string;
  channelId: string;
  socket: Socket | null;
  subscribed: boolean;
  /** Keys of the messages this client received. */
  seen: Set<string>;
  /** Id of the last message received, for the ordering check. */
  lastId: string | null;
}

interface AckPayload {
  ok?: boolean;
  message?: { id?: unknown };
  error?: { status?: unknown; title?: unknown; detail?: unknown };
}

let init: WorkerInit | null = null;
let workerId = -1;
const clients = new Map<number, Client>();
let stopping = false;

const latencies: Record<Phase, Samples> = {};
const receivedByKey = new Map<string, number>();
let received = 0;
let duplicates = 0;
let foreign = 0;
let misrouted = 0;
let malformed = 0;
let outOfOrder = 0;
const disconnects: Record<string, number> = {};

const lagMonitor = monitorEventLoopDelay({ resolution: 10 });
lagMonitor.enable();
let currentPhase: Phase | null = null;
/** performance.now() when the steady phase started, and per second of it (by send time) the worst delivery latency. */
let steadyStart: number | null = null;
const steadyMaxBySecond: number[] = [];
const lag: Partial<Record<Phase, LagStats>> = {};

let pendingAcks: AckReport[] = [];

function send(message: FromWorker): void {
  if (process.connected) process.send?.(message);
}

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function describeAckError(ack: AckPayload | undefined): string {
  const e = ack?.error;
  if (!e) return `unexpected ack ${JSON.stringify(ack)?.slice(0, 200)}`;
  return `${String(e.status)} ${String(e.title)}: ${String(e.detail)}`.slice(0, 300);
}

/** Compares two message ids (decimal strings of 64-bit integers). */
function idGreater(a: string, b: string): boolean {
  return a.length !== b.length ? a.length > b.length : a > b;
}

function onMessage(client: Client, message: unknown): void {
  const now = performance.now();
  const m = message as Record<string, unknown> | null;
  if (!m || typeof m !== "object" || typeof m.body !== "string") {
    foreign++;
    return;
  }
  let body: { k?: unknown; t?: unknown; p?: unknown };
  try {
    body = JSON.parse(m.body) as typeof body;
  } catch {
    foreign++;
    return;
  }
  if (typeof body.k !== "string" || typeof body.t !== "number" || !isPhase(body.p)) {
    foreign++;
    return;
  }
  if (
    typeof m.id !== "string" ||
    !/^\d+$/.test(m.id) ||
    m.room_guid !== null ||
    m.recipient !== null ||
    typeof m.sender !== "string" ||
    typeof m.created_at !== "string"
  )
    malformed++;
  if (m.channel_id !== client.channelId) misrouted++;
  if (client.seen.has(body.k)) {
    duplicates++;
    return;
  }
  client.seen.add(body.k);
  if (typeof m.id === "string") {
    if (client.lastId !== null && !idGreater(m.id, client.lastId)) outOfOrder++;
    client.lastId = m.id;
  }
  received++;
  receivedByKey.set(body.k, (receivedByKey.get(body.k) ?? 0) + 1);
  (latencies[body.p] ??= new Samples()).push(now - body.t);
  if (body.p === "steady" && steadyStart !== null) {
    const second = Math.max(0, Math.floor((body.t - steadyStart) / 1000));
    steadyMaxBySecond[second] = Math.max(steadyMaxBySecond[second] ?? 0, now - body.t);
  }
}

function connectOne(client: Client, options: WorkerInit, failures: Record<string, number>, connectMs: Samples): Promise<boolean> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = io(options.url, {
      auth: { token: client.token },
      transports: ["websocket"],
      reconnection: false,
      // Without forceNew every io(url) call would share one Manager (one WebSocket).
      forceNew: true,
      timeout: options.connectTimeoutMs,
    });
    client.socket = socket;
    socket.on("chat:message", (message: unknown) => onMessage(client, message));
    socket.on("disconnect", (reason: string) => {
      if (!stopping && client.subscribed) bump(disconnects, reason);
    });
    let settled = false;
    const finish = (failure: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      if (failure) {
        bump(failures, failure);
        socket.disconnect();
        resolve(false);
      } else {
        connectMs.push(performance.now() - started);
        resolve(true);
      }
    };
    // Belt and braces: connect timeout + subscribe ack timeout, plus a margin.
    const guard = setTimeout(() => finish("connect+subscribe took too long"), options.connectTimeoutMs + options.ackTimeoutMs + 1000);
    socket.once("connect_error", (error: Error) => finish(`connect_error: ${error.message}`));
    socket.once("connect", () => {
      connectedCount++;
      socket.timeout(options.ackTimeoutMs).emit("chat:subscribe", { channel_id: client.channelId }, (error: Error | null, ack?: AckPayload) => {
        if (error) return finish("chat:subscribe: no ack (timeout)");
        if (ack?.ok === true) {
          client.subscribed = true;
          subscribedCount++;
          return finish(null);
        }
        finish(`chat:subscribe: ${describeAckError(ack)}`);
      });
    });
  });
}

let connectedCount = 0;
let subscribedCount = 0;

async function connectAll(options: WorkerInit): Promise<void> {
  const failures: Record<string, number> = {};
  const connectMs = new Samples();
  const queue = [...clients.values()];
  let next = 0;
  let attempted = 0;
  const progress = setInterval(() => {
    send({ type: "connect-progress", workerId, attempted, connected: connectedCount, subscribed: subscribedCount });
  }, 1000);
  const runner = async (): Promise<void> => {
    while (next < queue.length && !stopping) {
      const client = queue[next++];
      attempted++;
      await connectOne(client, options, failures, connectMs);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, runner));
  } finally {
    clearInterval(progress);
  }
  send({
    type: "ready",
    workerId,
    connected: connectedCount,
    subscribed: subscribedCount,
    subscribedClients: [...clients.values()].filter((c) => c.subscribed).map((c) => c.idx),
    failures,
    connectMs: connectMs.toArray(),
  });
}

function reportAck(ack: AckReport): void {
  pendingAcks.push(ack);
}

function post(command: PostCommand, options: WorkerInit): void {
  const client = clients.get(command.clientIdx);
  const started = performance.now();
  const body = JSON.stringify({ k: command.k, t: started, p: command.phase });
  if (!client) {
    reportAck({ k: command.k, ok: false, ms: 0, error: "unknown client" });
    return;
  }
  if (options.via === "rest") {
    fetch(`${options.url}/chat/rooms/${encodeURIComponent(command.channelId)}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${client.token}`, "content-type": "application/json" },
      body: JSON.stringify({ body }),
      signal: AbortSignal.timeout(options.ackTimeoutMs),
    }).then(
      async (response) => {
        const text = await response.text();
        const ms = performance.now() - started;
        if (response.status === 201) {
          let id: string | undefined;
          try {
            const parsed = JSON.parse(text) as { id?: unknown };
            if (typeof parsed.id === "string") id = parsed.id;
          } catch {
            /* reported below through the missing id */
          }
          reportAck(id ? { k: command.k, ok: true, ms, messageId: id } : { k: command.k, ok: false, ms, error: `201 without a message id: ${text.slice(0, 200)}` });
        } else reportAck({ k: command.k, ok: false, ms, error: `HTTP ${response.status}: ${text.slice(0, 200)}` });
      },
      (error: unknown) => reportAck({ k: command.k, ok: false, ms: performance.now() - started, error: `fetch: ${errorMessage(error)}` }),
    );
    return;
  }
  const socket = client.socket;
  if (!socket || !socket.connected) {
    reportAck({ k: command.k, ok: false, ms: 0, error: "sender socket not connected" });
    return;
  }
  socket.timeout(options.ackTimeoutMs).emit("chat:send", { channel_id: command.channelId, body }, (error: Error | null, ack?: AckPayload) => {
    const ms = performance.now() - started;
    if (error) return reportAck({ k: command.k, ok: false, ms, error: "chat:send: no ack (timeout)" });
    if (ack?.ok === true && ack.message && typeof ack.message.id === "string")
      return reportAck({ k: command.k, ok: true, ms, messageId: ack.message.id });
    reportAck({ k: command.k, ok: false, ms, error: `chat:send: ${describeAckError(ack)}` });
  });
}

function closePhase(): void {
  if (currentPhase) {
    lag[currentPhase] = {
      p50: lagMonitor.percentile(50) / 1e6,
      p99: lagMonitor.percentile(99) / 1e6,
      max: lagMonitor.max / 1e6,
    };
  }
}

function stop(code: number): void {
  stopping = true;
  for (const client of clients.values()) client.socket?.disconnect();
  // Give the close frames a moment to leave, then go.
  setTimeout(() => process.exit(code), 200).unref();
}

const flusher = setInterval(() => {
  if (pendingAcks.length) {
    send({ type: "acks", workerId, acks: pendingAcks });
    pendingAcks = [];
  }
}, 50);
const progressTimer = setInterval(() => send({ type: "progress", workerId, received, duplicates }), 200);
flusher.unref();
progressTimer.unref();

process.on("message", (raw: unknown) => {
  const message = raw as ToWorker;
  try {
    switch (message.type) {
      case "init": {
        init = message;
        workerId = message.workerId;
        for (const spec of message.clients)
          clients.set(spec.idx, { ...spec, socket: null, subscribed: false, seen: new Set(), lastId: null });
        connectAll(message).catch((error: unknown) => send({ type: "fatal", workerId, error: errorMessage(error) }));
        break;
      }
      case "send":
        if (init) for (const command of message.posts) post(command, init);
        break;
      case "phase":
        closePhase();
        currentPhase = message.phase;
        if (message.phase === "steady") steadyStart = performance.now();
        lagMonitor.reset();
        break;
      case "collect": {
        closePhase();
        currentPhase = null;
        if (pendingAcks.length) {
          send({ type: "acks", workerId, acks: pendingAcks });
          pendingAcks = [];
        }
        send({
          type: "result",
          workerId,
          receivedByKey,
          latencies: Object.fromEntries(Object.entries(latencies).map(([phase, samples]) => [phase, samples.toArray()])),
          duplicates,
          foreign,
          misrouted,
          malformed,
          outOfOrder,
          disconnects,
          lag,
          steadyMaxBySecond: Array.from(steadyMaxBySecond, (v) => v ?? 0),
          rssMb: process.memoryUsage.rss() / 1024 / 1024,
        });
        break;
      }
      case "stop":
        stop(0);
        break;
    }
  } catch (error) {
    send({ type: "fatal", workerId, error: errorMessage(error) });
  }
});

// The orchestrator went away (crash, kill): never outlive it.
process.on("disconnect", () => stop(0));
process.on("uncaughtException", (error) => {
  send({ type: "fatal", workerId, error: `uncaught: ${errorMessage(error)}` });
  stop(1);
});
