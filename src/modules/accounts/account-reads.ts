import { In, type DataSource } from "typeorm";
import { batchedReads } from "../../db/batch";
import { SessionEntity } from "./session.entity";
import { UserEntity } from "./user.entity";

/**
 * The reads a credential check makes, batched per turn of the event loop: a reconnect
 * storm checks thousands of sessions at once, none cached yet.
 */
export function accountReads(dataSource: DataSource) {
  return {
    /** The account of a live session, or null. */
    sessionUser: batchedReads<string, UserEntity | null>(async (sessionIds) => {
      const { entities, raw } = await dataSource
        .getRepository(UserEntity)
        .createQueryBuilder("u")
        .innerJoin(SessionEntity, "s", "s.user_id = u.id")
        .addSelect("s.id", "session_id")
        .where("s.id IN (:...sessionIds) AND s.expires_at > now()", { sessionIds })
        .getRawAndEntities<{ u_id: string; session_id: string }>();
      const users = new Map(entities.map((user) => [user.id, user]));
      const bySession = new Map(raw.map((row) => [row.session_id, users.get(row.u_id) ?? null]));
      return sessionIds.map((id) => bySession.get(id) ?? null);
    }),
    /** Accounts by id, or null where gone. */
    userById: batchedReads<string, UserEntity | null>(async (ids) => {
      const users = new Map((await dataSource.getRepository(UserEntity).findBy({ id: In([...ids]) })).map((user) => [user.id, user]));
      return ids.map((id) => users.get(id) ?? null);
    }),
  };
}
