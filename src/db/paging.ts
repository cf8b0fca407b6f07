import type { ObjectLiteral, SelectQueryBuilder } from "typeorm";
import { decodeCursor, toPage, type Page } from "../http/pagination";

/**
 * One keyset page ordered by a name that is unique case-insensitively (its lower() is
 * indexed), so pages are stable under inserts and need no OFFSET or COUNT.
 */
export async function pageByName<E extends ObjectLiteral, T>(
  query: SelectQueryBuilder<E>,
  column: string,
  nameOf: (row: E) => string,
  page: { limit: number; cursor?: string },
  present: (row: E) => T,
): Promise<Page<T>> {
  query.orderBy(`lower(${column})`, "ASC").limit(page.limit + 1);
  if (page.cursor) {
    const [after] = decodeCursor(page.cursor, 1);
    query.where(`lower(${column}) > :after`, { after });
  }
  return toPage(await query.getMany(), page.limit, present, (row) => [nameOf(row).toLowerCase()]);
}
