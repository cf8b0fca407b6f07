import DataLoader from "dataloader";

/**
 * Reads asked for in one turn of the event loop, made as one query: `load` gets every
 * key asked for and answers each, in order. A connect storm asks for thousands of small
 * reads (a stream's last id, whether a channel exists), and each query's round trip to
 * Postgres costs the server more CPU than the read itself (docs/benchmarks.md).
 * Per turn, not per tick: each socket's handshake arrives in its own I/O callback.
 * Not a cache: every read sees what had committed when its batch ran, a turn after it
 * was asked for at most.
 */
export function batchedReads<K, V>(load: (keys: readonly K[]) => Promise<V[]>): (key: K) => Promise<V> {
  const loader = new DataLoader<K, V>(load, { cache: false, maxBatchSize: 1000, batchScheduleFn: (run) => setImmediate(run) });
  return (key) => loader.load(key);
}
