import type { MigrationInterface, QueryRunner } from "typeorm";

/** Anonymous pair identities, their rooms, and pair-room messages in the shared messages table. */
export class Pair1763700007000 implements MigrationInterface {
  name = "Pair1763700007000";

  async up(db: QueryRunner): Promise<void> {
    // Every public id ever issued: kept after deletion, so an id never names two identities.
    await db.query(`CREATE TABLE pair_public_ids (public_id char(7) PRIMARY KEY, issued_at timestamptz NOT NULL DEFAULT now())`);
    await db.query(`
      CREATE TABLE pair_users (
        id uuid PRIMARY KEY,
        public_id char(7) NOT NULL UNIQUE REFERENCES pair_public_ids(public_id),
        private_hash char(64) NOT NULL UNIQUE,
        username varchar(64) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`
      CREATE TABLE pair_rooms (
        room_id varchar(64) PRIMARY KEY,
        a_id uuid NOT NULL REFERENCES pair_users(id) ON DELETE CASCADE,
        b_id uuid NOT NULL REFERENCES pair_users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`CREATE INDEX pair_rooms_a_idx ON pair_rooms (a_id, created_at)`);
    await db.query(`CREATE INDEX pair_rooms_b_idx ON pair_rooms (b_id, created_at)`);
    await db.query(`ALTER TABLE messages ADD COLUMN pair_room varchar(64)`);
    await db.query(`CREATE INDEX messages_pair_room_idx ON messages (pair_room, id) WHERE pair_room IS NOT NULL`);
    await db.query(`DROP FUNCTION post_message(varchar[], uuid, uuid, uuid, varchar, uuid, varchar, text)`);
    await db.query(`
      CREATE FUNCTION post_message(
        p_keys varchar[], p_channel_id uuid, p_room_guid uuid, p_sender_id uuid, p_sender varchar,
        p_recipient_id uuid, p_recipient varchar, p_body text, p_pair_room varchar DEFAULT NULL,
        OUT o_id text, OUT o_created_at timestamptz, OUT o_previous jsonb
      ) LANGUAGE plpgsql AS $$
      DECLARE
        v_id bigint;
      BEGIN
        INSERT INTO message_streams (key)
        SELECT k FROM unnest(p_keys) AS k ORDER BY k
        ON CONFLICT (key) DO NOTHING;
        SELECT jsonb_object_agg(locked.key, locked.last_id::text) INTO o_previous
        FROM (SELECT key, last_id FROM message_streams WHERE key = ANY(p_keys) ORDER BY key FOR UPDATE) AS locked;

        INSERT INTO messages (channel_id, room_guid, sender_id, sender, recipient_id, recipient, body, pair_room)
        VALUES (p_channel_id, p_room_guid, p_sender_id, p_sender, p_recipient_id, p_recipient, p_body, p_pair_room)
        RETURNING id, created_at INTO v_id, o_created_at;

        UPDATE message_streams SET last_id = v_id WHERE key = ANY(p_keys);
        o_id := v_id::text;
      END
      $$`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DELETE FROM messages WHERE pair_room IS NOT NULL`);
    await db.query(`DROP FUNCTION post_message(varchar[], uuid, uuid, uuid, varchar, uuid, varchar, text, varchar)`);
    await db.query(`ALTER TABLE messages DROP COLUMN pair_room`);
    await db.query(`DROP TABLE pair_rooms`);
    await db.query(`DROP TABLE pair_users`);
    await db.query(`DROP TABLE pair_public_ids`);
  }
}
