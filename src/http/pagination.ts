import { HttpError } from "./errors";

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** Cursors are opaque to clients: base64url JSON of the last item's sort key. */
export function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

export function decodeCursor(cursor: string, arity: number): string[] {
  try {
    const key: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (Array.isArray(key) && key.length === arity && key.every((k) => typeof k === "string" && k.length <= 200 && !k.includes("\u0000")))
      return key as string[];
  } catch {
    // fall through to the 400 below
  }
  throw new HttpError(400, "The cursor is not one this server issued.", {
    errors: [{ field: "query.cursor", message: "invalid cursor" }],
  });
}

/** Keyset paging: fetch limit + 1 rows, so "is there more" needs no COUNT. */
export function toPage<Row, T>(rows: Row[], limit: number, present: (row: Row) => T, keyOf: (row: Row) => unknown[]): Page<T> {
  const more = rows.length > limit;
  const pageRows = more ? rows.slice(0, limit) : rows;
  return {
    items: pageRows.map(present),
    next_cursor: more ? encodeCursor(keyOf(pageRows[pageRows.length - 1])) : null,
  };
}
