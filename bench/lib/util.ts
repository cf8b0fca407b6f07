/** Small utilities every benchmark shares: loopback checks, ports, process CPU and RSS probes, Prometheus parsing. */
import fs from "node:fs";
import net from "node:net";
import { performance } from "node:perf_hooks";
import { round } from "../chat-shared";

/** A mistake in the command line: printed with the usage, exit code 2. */
export class UsageError extends Error {}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
export const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);
/**
 * Polls `done` every 50 ms until it holds (true) or `timeoutMs` passes (false, logged);
 * `check` runs each time and may throw to stop early, `progress` every `progressMs`.
 */
export async function waitFor(what: string, timeoutMs: number, done: () => boolean, check: () => void, progress?: () => void, progressMs = 2000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let lastProgress = Date.now();
  while (!done()) {
    check();
    if (Date.now() > deadline) {
      log(`${what}: gave up after ${Math.round(timeoutMs / 1000)} s`);
      return false;
    }
    if (progress && Date.now() - lastProgress >= progressMs) {
      progress();
      lastProgress = Date.now();
    }
    await sleep(50);
  }
  return true;
}

export const elapsed = (since: number): string => `${((performance.now() - since) / 1000).toFixed(1)} s`;

export const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export function assertLoopback(url: string, what: string): void {
  const host = new URL(url).hostname;
  if (!LOOPBACK.has(host) && !host.startsWith("127.")) throw new UsageError(`${what} must point at a loopback address, not ${host}`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Runs `task` over items with at most `limit` in flight. */
export async function mapLimit<T, R>(items: T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, runner));
  return results;
}

/** Resident set size of a process and its descendants, in bytes (Linux /proc). */
export function treeRssBytes(pid: number): number | null {
  let total = 0;
  let found = false;
  const visit = (p: number): void => {
    try {
      const status = fs.readFileSync(`/proc/${p}/status`, "utf8");
      const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
      if (match) {
        total += Number(match[1]) * 1024;
        found = true;
      }
      for (const child of childPids(p)) visit(child);
    } catch {
      /* the process went away between reads */
    }
  };
  visit(pid);
  return found ? total : null;
}

/** The pids of a process' children, over all its threads (Linux /proc). */
export function childPids(pid: number): number[] {
  return fs.readdirSync(`/proc/${pid}/task`).flatMap((task) => {
    const children = fs.readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
    return children ? children.split(/\s+/).map(Number) : [];
  });
}

/** CPU seconds (user + system) a process and its descendants have used so far (Linux /proc). */
export function treeCpuSeconds(pid: number, descendants = true): number | null {
  const ticksPerSecond = 100; // USER_HZ; getconf CLK_TCK is 100 on Linux
  let total = 0;
  let found = false;
  const visit = (p: number): void => {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, "utf8");
      // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
      found = true;
      if (!descendants) return;
      for (const child of childPids(p)) visit(child);
    } catch {
      /* the process went away between reads */
    }
  };
  visit(pid);
  return found ? total : null;
}

/** CPU seconds the whole machine has been busy (all CPUs, /proc/stat: all but idle and iowait). */
export function machineBusySeconds(): number | null {
  try {
    const line = fs.readFileSync("/proc/stat", "utf8").split("\n")[0];
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - ticks[3] - ticks[4]) / 100;
  } catch {
    return null;
  }
}

/** Pids of the Postgres processes on this machine (the server under test's database). */
export function postgresPids(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/comm`, "utf8").trim() === "postgres") pids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/**
 * CPU use of groups of processes over an interval, in percent of one core. The pid lists
 * are read again at the end, so processes that started meanwhile (Postgres backends)
 * count with all their CPU time.
 */
export class CpuMeter {
  private start: { at: number; cpu: Map<number, number>[]; machine: number | null } | null = null;

  constructor(private readonly groups: () => Record<string, number[]>) {}

  begin(): void {
    this.start = { at: performance.now(), cpu: this.read(), machine: machineBusySeconds() };
  }

  /** Percent of one core per group since begin(). */
  end(): Record<string, number | null> {
    const result: Record<string, number | null> = {};
    if (!this.start) return result;
    const seconds = (performance.now() - this.start.at) / 1000;
    const now = this.read();
    Object.keys(this.groups()).forEach((group, i) => {
      const before = this.start?.cpu[i] ?? new Map<number, number>();
      const after = now[i];
      if (!after || after.size === 0) {
        result[group] = null;
        return;
      }
      let used = 0;
      for (const [pid, cpu] of after) used += cpu - (before.get(pid) ?? 0);
      result[group] = round((used / seconds) * 100, 0);
    });
    // Everything that ran on the machine (softirq work of the loopback network included),
    // and what none of the processes above account for (other programs, kernel threads).
    const ours = Object.values(result).reduce<number>((sum, v) => sum + (v ?? 0), 0);
    const machine = machineBusySeconds();
    if (machine !== null && this.start.machine !== null) {
      result.machine = round(((machine - this.start.machine) / seconds) * 100, 0);
      result.unaccounted = round(result.machine - ours, 0);
    }
    return result;
  }

  private read(): Map<number, number>[] {
    // Only the server counts with its descendants (PROCESSES > 1); the orchestrator's
    // descendants are the server and the workers, the postmaster's are the other Postgres pids.
    return Object.entries(this.groups()).map(([group, pids]) => {
      const cpu = new Map<number, number>();
      for (const pid of pids) {
        const seconds = treeCpuSeconds(pid, group === "server");
        if (seconds !== null) cpu.set(pid, seconds);
      }
      return cpu;
    });
  }
}

/** The value of a Prometheus sample without labels (or the max over its label sets). */
export function promValue(text: string, name: string): number | null {
  let best: number | null = null;
  const pattern = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([-+0-9.eEInfNa]+)`, "gm");
  for (const match of text.matchAll(pattern)) {
    const value = Number(match[1]);
    if (Number.isFinite(value)) best = best === null ? value : Math.max(best, value);
  }
  return best;
}
