/**
 * What the lobby benchmark's orchestrator (bench/lobby.ts) and its subscriber processes
 * (bench/lobby-worker.ts) say to each other over IPC (`serialization: "advanced"`, so typed
 * arrays cross as they are). Times are `process.hrtime` (CLOCK_MONOTONIC) in ms: one clock
 * for every process on the machine, so the admin's send time and a subscriber's arrival
 * time compare directly.
 */

export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export interface Login {
  username: string;
  password: string;
}

export type ToLobbyWorker =
  | {
      type: "init";
      workerId: number;
      /** ws://127.0.0.1:port/lobby_api */
      url: string;
      /** The logins of this worker's subscribers, one per subscriber. */
      logins: Login[];
      /** Connects (open + login + subscribe) in flight at once in this worker. */
      concurrency: number;
      timeoutMs: number;
    }
  /** The changes start: the event-loop delay is measured from here. */
  | { type: "steady" }
  /** The admin's send time of each version (NaN: not one of the measured changes), and the last version there is. */
  | { type: "collect"; sendTimes: Float64Array; firstVersion: number; finalVersion: number }
  | { type: "stop" };

export interface LobbyWorkerResult {
  type: "result";
  workerId: number;
  /** Change-to-event latency of every measured event every subscriber received, ms. */
  latencies: Float64Array;
  events: number;
  /** Versions a subscriber never saw (gaps, and a tail short of the final version), summed over subscribers. */
  missing: number;
  /** Events whose version was not above the subscriber's previous one (reordered or doubled). */
  outOfOrder: number;
  /** Subscribers with at least one missing or out-of-order event. */
  subscribersWithProblems: number;
  /** Frames that were no lobby event. */
  malformed: number;
  /** Subscribers whose connection closed before the end. */
  closed: number;
  /** The worker's event-loop delay while events arrived, ms: high means the generator, not the server, was measured. */
  lagP99Ms: number;
  lagMaxMs: number;
  rssMb: number;
}

export type FromLobbyWorker =
  | { type: "progress"; workerId: number; subscribed: number; failed: number; events: number }
  | { type: "ready"; workerId: number; subscribed: number; failures: Record<string, number>; connectMs: Float64Array }
  | LobbyWorkerResult
  | { type: "fatal"; workerId: number; error: string };

/** The event `$type`s, with the lobby version last in each (as the server builds them). */
export const EVENT_TYPES = new Set(["table_added", "table_updated", "table_removed"]);
