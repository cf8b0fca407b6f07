import { Column, Entity, PrimaryColumn } from "typeorm";

@Entity({ name: "channels" })
export class ChannelEntity {
  @PrimaryColumn({ type: "uuid" })
  id!: string;

  @Column({ type: "varchar", length: 100 })
  name!: string;

  /** The creator's username when the channel was made. */
  @Column({ name: "created_by", type: "varchar", length: 32 })
  createdBy!: string;

  @Column({ name: "created_at", type: "timestamptz" })
  createdAt!: Date;
}
