import type { MigrationInterface, QueryRunner } from "typeorm";

/** Personal videos: the row names a file in UPLOADS_DIR. */
export class Videos1763700006000 implements MigrationInterface {
  name = "Videos1763700006000";

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE videos (
        id uuid PRIMARY KEY,
        owner_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        uploader varchar(32) NOT NULL,
        title varchar(200) NOT NULL,
        description text,
        mime_type varchar(100) NOT NULL,
        size bigint NOT NULL,
        duration double precision,
        file_name varchar(100) NOT NULL UNIQUE,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
      )`);
    await db.query(`CREATE INDEX videos_owner_idx ON videos (owner_id, created_at DESC, id DESC)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE videos`);
  }
}
