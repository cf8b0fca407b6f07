/** What the ordered relay (`stream-relay.ts`) carries, and what a module gives it. */

/** Anything a stream carries: a message, a lobby change. Ids are decimal strings that grow within a stream. */
export interface StreamItem {
  id: string;
}

/**
 * Where a kind of stream lives: its module answers these two questions from the
 * database, and the relay does the rest (ordering, gap repair, replay). Keys are
 * `<kind>:<id>`; the part before the first colon picks the source.
 */
export interface StreamSource<T extends StreamItem = StreamItem> {
  kind: string;
  /** The id of the stream's last committed item ("0" when it has none). */
  lastId(key: string): Promise<string>;
  /** The stream's items with after < id <= upTo, oldest first, at most `limit`. */
  between(key: string, after: string, upTo: string, limit: number): Promise<T[]>;
}

/** Published after an item commits: the item, and for each stream it belongs to the id it follows. */
export interface StreamEvent<T extends StreamItem = StreamItem> {
  item: T;
  streams: { key: string; previous: string }[];
}

export const STREAMS_TOPIC = "streams";

/** Receives a stream's items in order; `json` is the item serialized once for all listeners. */
export type Listener<T extends StreamItem = StreamItem> = (item: T, json: string) => void;

/** Where a listener starts: after `after`; `last` is the stream's last committed id, read with it. */
export interface ResumePoint {
  after: string;
  last: string;
}

/** What a replay reads to know it should stop: an AbortSignal, or any object with `aborted`. */
export interface Cancellation {
  readonly aborted: boolean;
}

export interface ListenOptions {
  /** Deliver the messages committed after `from.after` (see `resumePoint`), replaying first. */
  from: ResumePoint;
  /** Cancels a replay (the client went away). */
  signal?: Cancellation;
  /**
   * Backpressure for the replay: a promise while the client still has too much unsent,
   * so a long replay goes at the client's pace instead of piling up in its buffer.
   */
  ready?: () => Promise<void> | undefined;
}
