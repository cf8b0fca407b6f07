import { Column, Entity, PrimaryColumn } from "typeorm";

@Entity({ name: "rooms" })
export class RoomEntity {
  @PrimaryColumn({ type: "uuid" })
  guid!: string;

  @Column({ type: "varchar", length: 100 })
  name!: string;

  /** The most participants the room holds, the host included (1–1000). */
  @Column({ type: "integer" })
  capacity!: number;

  @Column({ name: "host_id", type: "uuid" })
  hostId!: string;

  @Column({ name: "created_at", type: "timestamptz" })
  createdAt!: Date;
}

@Entity({ name: "room_participants" })
export class RoomParticipantEntity {
  @PrimaryColumn({ name: "room_guid", type: "uuid" })
  roomGuid!: string;

  @PrimaryColumn({ name: "user_id", type: "uuid" })
  userId!: string;

  /** Join order: the longest-present participant has the smallest. */
  @Column({ type: "bigint" })
  seq!: string;

  @Column({ name: "joined_at", type: "timestamptz" })
  joinedAt!: Date;
}
