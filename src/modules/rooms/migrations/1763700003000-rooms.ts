import type { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Conference rooms and who is in them. Membership order (seq) is what "the
 * longest-present participant becomes host" reads; timestamps could tie.
 */
export class Rooms1763700003000 implements MigrationInterface {
  name = "Rooms1763700003000";

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE rooms (
        guid uuid PRIMARY KEY,
        name varchar(100) NOT NULL,
        capacity integer NOT NULL DEFAULT 5 CHECK (capacity BETWEEN 1 AND 1000),
        host_id uuid NOT NULL REFERENCES users(id),
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`
      CREATE TABLE room_participants (
        room_guid uuid NOT NULL REFERENCES rooms(guid) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        seq bigserial NOT NULL,
        joined_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (room_guid, user_id)
      )`);
    await db.query(`CREATE INDEX room_participants_user_idx ON room_participants (user_id, seq)`);
    await db.query(`CREATE INDEX room_participants_room_idx ON room_participants (room_guid, seq)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE room_participants`);
    await db.query(`DROP TABLE rooms`);
  }
}
