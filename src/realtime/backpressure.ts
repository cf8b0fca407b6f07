/** How long a replaying client may go without reading anything before it counts as stalled. */
export const REPLAY_STALL_MS = 30_000;
/** How often a paused replay looks again at what the client has left unread. */
const RECHECK_MS = 10;

/**
 * For replays: undefined while the client has at most `threshold` bytes unsent, else a
 * promise that resolves once it is down to that (or the client is gone). Measured again
 * every few ms rather than waiting for "drain" events: Node emits those only after a
 * write was refused, and engine.io only when its own queue empties, so a reading client
 * could wait for nothing. A client that reads nothing for REPLAY_STALL_MS is stalled:
 * `onStall` cuts it off.
 */
export function belowThreshold(
  unsent: () => number,
  threshold: number,
  gone: () => boolean,
  onStall: () => void,
): Promise<void> | undefined {
  if (gone() || unsent() <= threshold) return undefined;
  return new Promise<void>((resolve) => {
    let lowest = unsent();
    let lastProgress = Date.now();
    const timer = setInterval(() => {
      const now = unsent();
      if (gone() || now <= threshold) {
        clearInterval(timer);
        return resolve();
      }
      if (now < lowest) {
        lowest = now;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress > REPLAY_STALL_MS) {
        clearInterval(timer);
        onStall();
        resolve();
      }
    }, RECHECK_MS);
  });
}
