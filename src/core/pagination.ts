import { DomainError } from "./errors";

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** Cursors are opaque to clients: base64url JSON of the last item's sort key. */
export function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

/** The sort key of an opaque cursor; each part must match `part` when given. 400 otherwise. */
export function decodeCursor(cursor: string, arity: number, part?: RegExp): string[] {
  try {
    const key: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    const valid = (k: unknown) => typeof k === "string" && k.length <= 200 && !k.includes("\u0000") && (part?.test(k) ?? true);
    if (Array.isArray(key) && key.length === arity && key.every(valid)) return key as string[];
  } catch {
    // fall through to the 400 below
  }
  throw new DomainError(400, "The cursor is not one this server issued.", {
    errors: [{ field: "query.cursor", message: "invalid cursor" }],
  });
}

/**
 * Keyset paging: fetch limit + 1 rows, so "is there more" needs no COUNT. The cursor is
 * the last item's sort key, opaque (`encodeCursor`) unless the caller makes it otherwise.
 */
export function toPage<Row, T>(rows: Row[], limit: number, present: (row: Row) => T, cursorOf: (row: Row) => string): Page<T> {
  const more = rows.length > limit;
  const pageRows = more ? rows.slice(0, limit) : rows;
  return {
    items: pageRows.map(present),
    next_cursor: more ? cursorOf(pageRows[pageRows.length - 1]) : null,
  };
}
