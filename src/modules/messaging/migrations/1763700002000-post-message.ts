import type { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Posting a message in one statement: lock the message's streams (creating missing
 * rows, in key order), take the id, insert, record it as each stream's last id. One
 * round trip holds a pooled connection for as short as possible, and the statement's
 * own transaction makes it all or nothing.
 */
export class PostMessage1763700002000 implements MigrationInterface {
  name = "PostMessage1763700002000";

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE FUNCTION post_message(
        p_keys varchar[], p_channel_id uuid, p_room_guid uuid, p_sender_id uuid, p_sender varchar,
        p_recipient_id uuid, p_recipient varchar, p_body text,
        OUT o_id text, OUT o_created_at timestamptz, OUT o_previous jsonb
      ) LANGUAGE plpgsql AS $$
      DECLARE
        v_id bigint;
      BEGIN
        INSERT INTO message_streams (key)
        SELECT k FROM unnest(p_keys) AS k ORDER BY k
        ON CONFLICT (key) DO NOTHING;
        -- Locked in key order, so posts that share streams cannot deadlock; after waiting
        -- for a lock, the row read is the version the previous poster committed.
        SELECT jsonb_object_agg(locked.key, locked.last_id::text) INTO o_previous
        FROM (SELECT key, last_id FROM message_streams WHERE key = ANY(p_keys) ORDER BY key FOR UPDATE) AS locked;

        INSERT INTO messages (channel_id, room_guid, sender_id, sender, recipient_id, recipient, body)
        VALUES (p_channel_id, p_room_guid, p_sender_id, p_sender, p_recipient_id, p_recipient, p_body)
        RETURNING id, created_at INTO v_id, o_created_at;

        UPDATE message_streams SET last_id = v_id WHERE key = ANY(p_keys);
        o_id := v_id::text;
      END
      $$`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP FUNCTION post_message`);
  }
}
