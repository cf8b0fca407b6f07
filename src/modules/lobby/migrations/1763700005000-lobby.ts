import type { MigrationInterface, QueryRunner } from "typeorm";

/**
 * The lobby's tables, in the order `position` gives; every change as a numbered event
 * (what subscribers replay), and the one-row state whose version numbers them.
 */
export class Lobby1763700005000 implements MigrationInterface {
  name = "Lobby1763700005000";

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE lobby_tables (
        id integer PRIMARY KEY CHECK (id > 0),
        name varchar(100) NOT NULL,
        participants integer NOT NULL CHECK (participants >= 0),
        position bigint NOT NULL
      )`);
    await db.query(`CREATE INDEX lobby_tables_position_idx ON lobby_tables (position)`);
    await db.query(`CREATE TABLE lobby_changes (version bigint PRIMARY KEY, event jsonb NOT NULL)`);
    await db.query(`CREATE TABLE lobby_state (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)`);
    await db.query(`INSERT INTO lobby_state (id, version) VALUES (1, 0)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE lobby_state`);
    await db.query(`DROP TABLE lobby_changes`);
    await db.query(`DROP TABLE lobby_tables`);
  }
}
