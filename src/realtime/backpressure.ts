import type { EventEmitter } from "node:events";

/** How long a replaying client may take to read what it was sent before it counts as stalled. */
export const REPLAY_STALL_MS = 30_000;

/**
 * Resolves at the first of `events` (the client drained its output, or went away); a
 * client that does neither within REPLAY_STALL_MS is stalled: `onStall` runs first.
 */
export function firstOf(events: Array<[EventEmitter, string]>, onStall: () => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(stalled);
      for (const [emitter, name] of events) emitter.off(name, done);
      resolve();
    };
    const stalled = setTimeout(() => {
      onStall();
      done();
    }, REPLAY_STALL_MS);
    for (const [emitter, name] of events) emitter.on(name, done);
  });
}
