import { Column, Entity, PrimaryColumn } from "typeorm";

@Entity({ name: "videos" })
export class VideoEntity {
  @PrimaryColumn({ type: "uuid" })
  id!: string;

  @Column({ name: "owner_id", type: "uuid" })
  ownerId!: string;

  /** The uploader's username when uploaded. */
  @Column({ type: "varchar", length: 32 })
  uploader!: string;

  @Column({ type: "varchar", length: 200 })
  title!: string;

  @Column({ type: "text", nullable: true })
  description!: string | null;

  @Column({ name: "mime_type", type: "varchar", length: 100 })
  mimeType!: string;

  @Column({ type: "bigint", transformer: { to: (v: number) => v, from: (v: string) => Number(v) } })
  size!: number;

  @Column({ type: "double precision", nullable: true })
  duration!: number | null;

  /** The file's name inside UPLOADS_DIR (server-generated). */
  @Column({ name: "file_name", type: "varchar", length: 100 })
  fileName!: string;

  @Column({ name: "created_at", type: "timestamptz" })
  createdAt!: Date;

  @Column({ name: "updated_at", type: "timestamptz" })
  updatedAt!: Date;
}
