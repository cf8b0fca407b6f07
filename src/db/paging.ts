import type { ObjectLiteral, SelectQueryBuilder } from "typeorm";
import { decodeCursor, encodeCursor, toPage, type Page } from "../core/pagination";

/**
 * One keyset page ordered by a name that is unique case-insensitively (its lower() is
 * indexed), so pages are stable under inserts and need no OFFSET or COUNT. The cursor
 * holds Postgres' own lower() of the last name: JavaScript lower-cases some letters
 * differently (İ, final Σ), and a cursor that does not match the index skips or repeats.
 */
export async function pageByName<E extends ObjectLiteral, T>(
  query: SelectQueryBuilder<E>,
  column: string,
  page: { limit: number; cursor?: string },
  present: (row: E) => T,
): Promise<Page<T>> {
  query.addSelect(`lower(${column})`, "sort_key").orderBy(`lower(${column})`, "ASC").limit(page.limit + 1);
  if (page.cursor) {
    const [after] = decodeCursor(page.cursor, 1);
    query.where(`lower(${column}) > :after`, { after });
  }
  const { entities, raw } = await query.getRawAndEntities<{ sort_key: string }>();
  const rows = entities.map((entity, i) => ({ entity, sortKey: raw[i].sort_key }));
  return toPage(rows, page.limit, (row) => present(row.entity), (row) => encodeCursor([row.sortKey]));
}
