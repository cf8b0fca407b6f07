import type { MigrationInterface, QueryRunner } from "typeorm";

export class Messaging1763700001000 implements MigrationInterface {
  name = "Messaging1763700001000";

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE channels (
        id uuid PRIMARY KEY,
        name varchar(100) NOT NULL,
        created_by varchar(32) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`CREATE UNIQUE INDEX channels_name_lower_key ON channels (lower(name))`);
    await db.query(`CREATE INDEX channels_created_idx ON channels (created_at, id)`);
    // One row per conversation stream ('channel:<id>', 'dm:<user id>', ...). Posting locks
    // the row, so ids within a stream are taken and committed in one order, and last_id
    // lets every process tell a missed message from a new one.
    await db.query(`
      CREATE TABLE message_streams (
        key varchar(100) PRIMARY KEY,
        last_id bigint NOT NULL DEFAULT 0
      )`);
    await db.query(`
      CREATE TABLE messages (
        id bigserial PRIMARY KEY,
        channel_id uuid REFERENCES channels(id) ON DELETE CASCADE,
        room_guid uuid,
        sender_id uuid REFERENCES users(id) ON DELETE SET NULL,
        sender varchar(64) NOT NULL,
        recipient_id uuid REFERENCES users(id) ON DELETE CASCADE,
        recipient varchar(64),
        body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 4000),
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`CREATE INDEX messages_channel_idx ON messages (channel_id, id) WHERE channel_id IS NOT NULL`);
    await db.query(`CREATE INDEX messages_room_idx ON messages (room_guid, id) WHERE room_guid IS NOT NULL`);
    await db.query(`CREATE INDEX messages_dm_recipient_idx ON messages (recipient_id, id) WHERE recipient_id IS NOT NULL`);
    await db.query(`CREATE INDEX messages_dm_sender_idx ON messages (sender_id, id) WHERE recipient_id IS NOT NULL`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE messages`);
    await db.query(`DROP TABLE message_streams`);
    await db.query(`DROP TABLE channels`);
  }
}
