/** Cleanup: a stack of bounded async steps, run once, in reverse order of registration. */
import { type ChildProcess } from "node:child_process";
import { errorMessage } from "../chat-shared";
import { sleep, log } from "./util";

export class Cleanup {
  private readonly steps: { name: string; run: () => Promise<void> }[] = [];
  private running: Promise<void> | null = null;

  add(name: string, run: () => Promise<void>): void {
    this.steps.push({ name, run });
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) {
        try {
          await Promise.race([step.run(), sleep(30_000).then(() => Promise.reject(new Error("timed out after 30 s")))]);
        } catch (error) {
          log(`cleanup: ${step.name} failed: ${errorMessage(error)}`);
        }
      }
    })();
    return this.running;
  }
}

export function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function terminate(child: ChildProcess, name: string, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  if (await waitForExit(child, graceMs)) return;
  log(`${name} (pid ${child.pid}) did not stop within ${graceMs / 1000} s of SIGTERM; sending SIGKILL`);
  child.kill("SIGKILL");
  await waitForExit(child, 5000);
}
