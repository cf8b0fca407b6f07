import { In, type DataSource } from "typeorm";
import type { Standing } from "../../realtime/connections";
import { SessionEntity } from "./session.entity";
import type { UserPrincipal } from "./sessions.service";
import { UserEntity } from "./user.entity";

/**
 * Whether each user principal's credentials still stand, read from the database (for
 * when the bus may have lost events): its user gone, its session gone or expired, or
 * (no session: HTTP Basic, a lobby login) its password changed is "ended"; a user row
 * updated since it was read (a demotion) is "changed". Two queries for the whole batch.
 */
export async function userStandings(dataSource: DataSource, principals: UserPrincipal[]): Promise<Standing[]> {
  const userIds = [...new Set(principals.map((p) => p.id))];
  const sessionIds = [...new Set(principals.flatMap((p) => (p.sessionId ? [p.sessionId] : [])))];
  const users = new Map((await dataSource.getRepository(UserEntity).findBy({ id: In(userIds) })).map((u) => [u.id, u]));
  const sessions = new Set<string>();
  if (sessionIds.length > 0) {
    const rows: { id: string }[] = await dataSource
      .getRepository(SessionEntity)
      .createQueryBuilder("s")
      .select("s.id", "id")
      .where("s.id IN (:...sessionIds) AND s.expires_at > now()", { sessionIds })
      .getRawMany();
    for (const row of rows) sessions.add(row.id);
  }
  return principals.map((principal) => {
    const user = users.get(principal.id);
    if (!user) return "ended";
    const ended = principal.sessionId ? !sessions.has(principal.sessionId) : user.passwordHash !== principal.user.passwordHash;
    if (ended) return "ended";
    return user.updatedAt.getTime() !== principal.user.updatedAt.getTime() ? "changed" : "valid";
  });
}
