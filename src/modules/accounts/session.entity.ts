import { Column, Entity, PrimaryColumn } from "typeorm";

/** One issued bearer token. A token is valid only while its row exists. */
@Entity({ name: "sessions" })
export class SessionEntity {
  @PrimaryColumn({ type: "uuid" })
  id!: string;

  @Column({ name: "user_id", type: "uuid" })
  userId!: string;

  @Column({ name: "created_at", type: "timestamptz" })
  createdAt!: Date;

  @Column({ name: "expires_at", type: "timestamptz" })
  expiresAt!: Date;
}
