import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { testEnv } from "./test-server";

export const MAIN = path.resolve(__dirname, "../../dist/src/main.js");

export interface ServerProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
  /** Resolves with the base URL once the process logs that it listens. */
  listening(timeoutMs?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs the built server (`npm test` builds it first) as its own process. */
export function startProcess(env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH!, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    child,
    exited,
    output: () => output,
    async listening(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let match: RegExpExecArray | null;
      while (!(match = /"port":(\d+)[^\n]*"msg":"listening"/.exec(output))) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      return `http://127.0.0.1:${match[1]}`;
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * The environment of a server process on this test's Postgres database: `testEnv`'s
 * (its own secret, data directory and Redis prefix; the machine's Redis in the postgres
 * project), on loopback, a free port, logging the "listening" line `listening()` waits
 * for, and no drain delay unless the test is about one. Remove `DATA_DIR` afterwards.
 */
export function processEnv(databaseUrl: string, overrides: Record<string, string> = {}): Record<string, string> {
  return testEnv({ HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "info", DRAIN_DELAY_SECONDS: "0", DATABASE_URL: databaseUrl, ...overrides });
}
