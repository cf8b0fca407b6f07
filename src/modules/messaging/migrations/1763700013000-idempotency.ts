import type { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Idempotency keys for posts: one row per (principal, key), the unique primary key being
 * what makes a retry safe across processes and restarts (a cache could not). The key is
 * claimed in the same statement that posts, so a post and its key commit together or not
 * at all; a concurrent retry waits on the uncommitted row and then reads the first
 * message. A key is reusable after 24 hours.
 */
export class Idempotency1763700013000 implements MigrationInterface {
  name = "Idempotency1763700013000";

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE message_idempotency (
        principal varchar(100) NOT NULL,
        key varchar(64) NOT NULL,
        fingerprint varchar(64) NOT NULL,
        message_id bigint REFERENCES messages(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (principal, key)
      )`);
    await db.query(`CREATE INDEX message_idempotency_message_idx ON message_idempotency (message_id)`);
    await db.query(`CREATE INDEX message_idempotency_created_idx ON message_idempotency (created_at)`);
    await db.query(`
      CREATE FUNCTION post_message_once(
        p_principal varchar, p_key varchar, p_fingerprint varchar,
        p_keys varchar[], p_channel_id uuid, p_room_guid uuid, p_sender_id uuid, p_sender varchar,
        p_recipient_id uuid, p_recipient varchar, p_body text, p_pair_room varchar,
        OUT o_id text, OUT o_created_at timestamptz, OUT o_previous jsonb, OUT o_outcome text
      ) LANGUAGE plpgsql AS $$
      DECLARE
        v_fingerprint varchar;
        v_message bigint;
      BEGIN
        DELETE FROM message_idempotency
        WHERE principal = p_principal AND key = p_key AND created_at < now() - interval '24 hours';
        -- Waits for a concurrent post holding the same key; inserts nothing if it committed.
        INSERT INTO message_idempotency (principal, key, fingerprint) VALUES (p_principal, p_key, p_fingerprint)
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
          SELECT p.o_id, p.o_created_at, p.o_previous INTO o_id, o_created_at, o_previous
          FROM post_message(p_keys, p_channel_id, p_room_guid, p_sender_id, p_sender, p_recipient_id, p_recipient, p_body, p_pair_room) AS p;
          UPDATE message_idempotency SET message_id = o_id::bigint WHERE principal = p_principal AND key = p_key;
          o_outcome := 'posted';
          RETURN;
        END IF;
        SELECT fingerprint, message_id INTO v_fingerprint, v_message
        FROM message_idempotency WHERE principal = p_principal AND key = p_key;
        IF v_fingerprint <> p_fingerprint THEN
          o_outcome := 'conflict';
          RETURN;
        END IF;
        SELECT id::text, created_at INTO o_id, o_created_at FROM messages WHERE id = v_message;
        o_outcome := 'replayed';
      END
      $$`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP FUNCTION post_message_once`);
    await db.query(`DROP TABLE message_idempotency`);
  }
}
