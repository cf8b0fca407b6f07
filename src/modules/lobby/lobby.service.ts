import type { DataSource, EntityManager } from "typeorm";
import { DomainError } from "../../core/errors";
import type { FailedCredentialLimiter } from "../../http/password-budget";
import type { Logger } from "../../logger";
import type { StreamRelay, StreamSource } from "../../realtime/stream-relay";
import type { AccountsExports, AccountsService, UserEntity } from "../accounts";

type SessionService = AccountsExports["sessions"];
import { INT_MAX, type LobbyEvent, type LobbyFailureBody, type NewTable, type Table } from "./lobby.protocol";

export const LOBBY_STREAM = "lobby:tables";

/** A change the lobby refused: its `$type` body, and the HTTP status that says why. */
export class LobbyFailure extends DomainError {
  constructor(
    status: number,
    readonly body: LobbyFailureBody,
  ) {
    super(status, `The lobby refused the change: ${body.$type}.`);
  }
}

/** What the relay carries: a change, numbered by the lobby's version. */
export interface LobbyChange {
  id: string;
  event: LobbyEvent;
}

const validId = (id: unknown): id is number => typeof id === "number" && Number.isInteger(id) && id >= 1 && id <= INT_MAX;

interface TableRow {
  id: number;
  name: string;
  participants: number;
}
const present = (row: TableRow): Table => ({ id: row.id, name: row.name, participants: row.participants });

/**
 * The lobby's tables, one service for the WebSocket, REST and Socket.IO doors. Every
 * change locks the state row, so changes serialize and each gets the next version in
 * the same transaction as its event row; the event is published after the commit.
 */
export class LobbyService {
  readonly source: StreamSource<LobbyChange> = {
    kind: "lobby",
    lastId: async () => String(await this.version(this.dataSource.manager)),
    between: async (_key, after, upTo, limit) => {
      const rows: { version: string; event: LobbyEvent }[] = await this.dataSource.query(
        `SELECT version::text AS version, event FROM lobby_changes WHERE version > $1 AND version <= $2 ORDER BY version LIMIT $3`,
        [after, upTo, limit],
      );
      return rows.map((row) => ({ id: row.version, event: row.event }));
    },
  };

  constructor(
    private readonly dataSource: DataSource,
    private readonly relay: StreamRelay,
    private readonly accounts: AccountsService,
    private readonly sessions: SessionService,
    private readonly log: Logger,
    private readonly failedCredentials: FailedCredentialLimiter,
  ) {}

  /**
   * The user when the password is theirs, else null (the same for an unknown user). A wrong
   * password counts in the one budget of every door (per address, and per account);
   * over it, throws 429 without checking the password.
   */
  async checkLogin(username: string, password: string, address: string): Promise<UserEntity | null> {
    const attempt = await this.failedCredentials.attempt({ ip: address, account: username });
    let user: UserEntity | null;
    try {
      user = await this.accounts.findByUsername(this.dataSource.manager, username);
    } catch (error) {
      await attempt.forgive();
      throw error;
    }
    if (!(await this.sessions.checkPassword(user, password))) return null;
    await attempt.succeeded();
    return user;
  }

  /** The account as it is now (null when it is gone). */
  currentUser(id: string): Promise<UserEntity | null> {
    return this.accounts.findById(this.dataSource.manager, id);
  }

  private async version(manager: EntityManager, lock = ""): Promise<number> {
    const rows: { version: string }[] = await manager.query(`SELECT version::text AS version FROM lobby_state WHERE id = 1 ${lock}`);
    return Number(rows[0]?.version ?? 0);
  }

  /** Every table in order, with the version they are at. */
  list(): Promise<{ $type: "table_list"; tables: Table[]; version: number }> {
    return this.dataSource.transaction(async (manager) => {
      // A shared lock waits for a change under way, so the tables and the version agree.
      const version = await this.version(manager, "FOR SHARE");
      const rows: TableRow[] = await manager.query(`SELECT id, name, participants FROM lobby_tables ORDER BY position, id`);
      return { $type: "table_list" as const, tables: rows.map(present), version };
    });
  }

  add(afterId: number, table: NewTable): Promise<LobbyEvent> {
    return this.change(async (manager, version) => {
      const failed = new LobbyFailure(409, { $type: "addition_failed", after_id: afterId });
      if (table.id !== undefined && !validId(table.id)) throw failed;
      let position: number;
      if (afterId === -1) {
        const rows: { p: string }[] = await manager.query(`SELECT (COALESCE(MIN(position), 1) - 1)::text AS p FROM lobby_tables`);
        position = Number(rows[0].p);
      } else {
        if (!validId(afterId)) throw failed;
        const rows: { p: string }[] = await manager.query(`SELECT position::text AS p FROM lobby_tables WHERE id = $1`, [afterId]);
        if (rows.length === 0) throw failed;
        position = Number(rows[0].p) + 1;
        await manager.query(`UPDATE lobby_tables SET position = position + 1 WHERE position >= $1`, [position]);
      }
      let id = table.id as number | undefined;
      if (id === undefined) id = await this.unusedId(manager);
      else if ((await manager.query(`SELECT 1 FROM lobby_tables WHERE id = $1`, [id])).length > 0) throw failed;
      if (id === undefined) throw failed;
      await manager.query(`INSERT INTO lobby_tables (id, name, participants, position) VALUES ($1, $2, $3, $4)`, [id, table.name, table.participants, position]);
      return { $type: "table_added", after_id: afterId, table: { id, name: table.name, participants: table.participants }, version };
    });
  }

  update(table: Table): Promise<LobbyEvent> {
    return this.change(async (manager, version) => {
      const failed = new LobbyFailure(404, { $type: "update_failed", id: table.id });
      if (!validId(table.id)) throw failed;
      const rows: unknown[] = await manager.query(`WITH changed AS (UPDATE lobby_tables SET name = $2, participants = $3 WHERE id = $1 RETURNING id) SELECT id FROM changed`, [
        table.id,
        table.name,
        table.participants,
      ]);
      if (rows.length === 0) throw failed;
      return { $type: "table_updated", table: present(table), version };
    });
  }

  remove(id: number): Promise<LobbyEvent> {
    return this.change(async (manager, version) => {
      const failed = new LobbyFailure(404, { $type: "removal_failed", id });
      if (!validId(id)) throw failed;
      const rows: unknown[] = await manager.query(`WITH gone AS (DELETE FROM lobby_tables WHERE id = $1 RETURNING id) SELECT id FROM gone`, [id]);
      if (rows.length === 0) throw failed;
      return { $type: "table_removed", id, version };
    });
  }

  /** The smallest id after the largest run from 1 (any unused id would do), or undefined when none is left. */
  private async unusedId(manager: EntityManager): Promise<number | undefined> {
    const rows: { id: number | null }[] = await manager.query(`
      SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM lobby_tables WHERE id = 1) THEN 1
        ELSE (SELECT MIN(t.id) + 1 FROM lobby_tables t WHERE t.id < ${INT_MAX} AND NOT EXISTS (SELECT 1 FROM lobby_tables u WHERE u.id = t.id + 1))
      END AS id`);
    return rows[0]?.id ?? undefined;
  }

  // UPDATE and DELETE go through a CTE: TypeORM answers a bare one with [rows, count], a SELECT with rows.

  /** Runs one change under the state row's lock, records it as the next version, and publishes it once committed. */
  private async change(apply: (manager: EntityManager, version: number) => Promise<LobbyEvent>): Promise<LobbyEvent> {
    const event = await this.dataSource.transaction(async (manager) => {
      const next = (await this.version(manager, "FOR UPDATE")) + 1;
      const result = await apply(manager, next);
      await manager.query(`INSERT INTO lobby_changes (version, event) VALUES ($1, $2)`, [next, JSON.stringify(result)]);
      await manager.query(`UPDATE lobby_state SET version = $1 WHERE id = 1`, [next]);
      return result;
    });
    const item: LobbyChange = { id: String(event.version), event };
    this.relay
      .publish({ item, streams: [{ key: LOBBY_STREAM, previous: String(event.version - 1) }] })
      .catch((error: unknown) => this.log.warn({ err: error }, "could not publish a lobby change (subscribers repair the gap on the next one)"));
    return event;
  }
}
