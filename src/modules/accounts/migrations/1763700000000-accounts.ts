import type { MigrationInterface, QueryRunner } from "typeorm";

export class Accounts1763700000000 implements MigrationInterface {
  name = "Accounts1763700000000";

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE users (
        id uuid PRIMARY KEY,
        username varchar(32) NOT NULL,
        password_hash varchar(100) NOT NULL,
        mobile_token varchar(512),
        user_type varchar(10) NOT NULL DEFAULT 'user' CHECK (user_type IN ('admin', 'user')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    // Usernames are unique case-insensitively; the index also serves lookups and paging.
    await db.query(`CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username))`);
    await db.query(`
      CREATE TABLE sessions (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
      )`);
    await db.query(`CREATE INDEX sessions_user_id_idx ON sessions (user_id)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE sessions`);
    await db.query(`DROP TABLE users`);
  }
}
