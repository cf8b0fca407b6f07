/**
 * Types and helpers shared by the chat benchmark's orchestrator (bench/chat.ts) and its
 * load worker processes (bench/chat-worker.ts). The two talk over Node's IPC channel with
 * `serialization: "advanced"`, so Maps and typed arrays cross it as they are.
 */

/** "warmup", "steady", or "sweep-<deliveries per second>" for each rate of --rates. */
export type Phase = string;

export const isPhase = (p: unknown): p is Phase => p === "warmup" || p === "steady" || (typeof p === "string" && /^sweep-\d+$/.test(p));

export type Via = "socket" | "rest";

/** One simulated user: its bearer token and the channel it subscribes to. */
export interface ClientSpec {
  idx: number;
  token: string;
  channelId: string;
}

/** One post the orchestrator asks a worker to make, as client `clientIdx` into its channel. */
export interface PostCommand {
  /** Unique key carried in the body, so receivers can match deliveries to posts. */
  k: string;
  phase: Phase;
  clientIdx: number;
  channelId: string;
}

export interface WorkerInit {
  type: "init";
  workerId: number;
  /** Base URL of the server, e.g. http://127.0.0.1:34567 */
  url: string;
  clients: ClientSpec[];
  /** Connections (connect + subscribe) in flight at once in this worker. */
  concurrency: number;
  connectTimeoutMs: number;
  ackTimeoutMs: number;
  via: Via;
}

export type ToWorker =
  | WorkerInit
  | { type: "send"; posts: PostCommand[] }
  /** Starts a measurement phase (resets the worker's event-loop delay monitor). */
  | { type: "phase"; phase: Phase | null }
  | { type: "collect" }
  | { type: "stop" };

export interface AckReport {
  k: string;
  ok: boolean;
  /** Post-to-ack (socket) or request-to-response (REST) time, ms. */
  ms: number;
  error?: string;
  messageId?: string;
}

export interface LagStats {
  p50: number;
  p99: number;
  max: number;
}

export interface WorkerResult {
  type: "result";
  workerId: number;
  /** Unique deliveries per post key (a client counted at most once per key). */
  receivedByKey: Map<string, number>;
  /** Post-to-delivery latencies (ms) of first deliveries, per phase. */
  latencies: Record<Phase, Float64Array>;
  duplicates: number;
  /** `chat:message` events whose body is not one of ours. */
  foreign: number;
  /** Messages that arrived on a client subscribed to another channel. */
  misrouted: number;
  /** Messages not shaped as API.md says ({id: digits, channel_id, room_guid: null, ...}). */
  malformed: number;
  /** Per client, a message whose id was not greater than the previous one on that channel. */
  outOfOrder: number;
  /** Disconnects the worker did not ask for, by reason. */
  disconnects: Record<string, number>;
  lag: Partial<Record<Phase, LagStats>>;
  /** Worst post-to-delivery latency (ms) of the posts sent in each second of the steady phase. */
  steadyMaxBySecond: number[];
  rssMb: number;
}

export type FromWorker =
  | { type: "connect-progress"; workerId: number; attempted: number; connected: number; subscribed: number }
  | {
      type: "ready";
      workerId: number;
      connected: number;
      subscribed: number;
      subscribedClients: number[];
      failures: Record<string, number>;
      /** Connect-to-subscribe-ack time per subscribed client, ms. */
      connectMs: Float64Array;
    }
  | { type: "acks"; workerId: number; acks: AckReport[] }
  | { type: "progress"; workerId: number; received: number; duplicates: number }
  | WorkerResult
  | { type: "fatal"; workerId: number; error: string };

/** A Float64Array that grows, for latency samples. */
export class Samples {
  private data = new Float64Array(1024);
  private size = 0;

  push(value: number): void {
    if (this.size === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.size++] = value;
  }

  get length(): number {
    return this.size;
  }

  toArray(): Float64Array {
    return this.data.slice(0, this.size);
  }
}

export interface Percentiles {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

/** Nearest-rank percentiles of the samples (sorted in place), rounded to 0.01. */
export function percentiles(values: Float64Array): Percentiles {
  const sorted = values.sort();
  const at = (q: number): number | null => {
    if (sorted.length === 0) return null;
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return round(sorted[rank]);
  };
  return { count: sorted.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1) };
}

export function concatSamples(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
