import { Column, Entity, PrimaryColumn } from "typeorm";

export type UserType = "admin" | "user";

export { USERNAME_PATTERN } from "../../core/text";
/** Passwords are 8–128 characters (code points), stored only as a bcrypt hash. */
export const MAX_PASSWORD_CHARACTERS = 128;

@Entity({ name: "users" })
export class UserEntity {
  @PrimaryColumn({ type: "uuid" })
  id!: string;

  @Column({ type: "varchar", length: 32 })
  username!: string;

  @Column({ name: "password_hash", type: "varchar", length: 100 })
  passwordHash!: string;

  @Column({ name: "mobile_token", type: "varchar", length: 512, nullable: true })
  mobileToken!: string | null;

  @Column({ name: "user_type", type: "varchar", length: 10 })
  userType!: UserType;

  @Column({ name: "created_at", type: "timestamptz" })
  createdAt!: Date;

  @Column({ name: "updated_at", type: "timestamptz" })
  updatedAt!: Date;
}
