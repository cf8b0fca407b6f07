import { pageOf, text } from "../../http/schemas";
import { z } from "../../http/zod";
import { MAX_PASSWORD_CHARACTERS, USERNAME_PATTERN } from "./user.entity";

export const UsernameSchema = z
  .string()
  .regex(USERNAME_PATTERN, "3-32 characters of A-Z a-z 0-9 _ . -")
  .openapi({ example: "alice" });

export const NewPasswordSchema = text(8, MAX_PASSWORD_CHARACTERS);
/** Login accepts any stored password, including a short configured admin password. */
const AnyPasswordSchema = text(1, MAX_PASSWORD_CHARACTERS);
const MobileTokenSchema = text(1, 512);

export const RegisterBody = z
  .strictObject({ username: UsernameSchema, password: NewPasswordSchema, mobile_token: MobileTokenSchema.optional() })
  .openapi("RegisterRequest");

export const LoginBody = z
  .strictObject({ username: text(1, 64), password: AnyPasswordSchema })
  .openapi("LoginRequest");

export const UpdateUserBody = z
  .strictObject({
    password: NewPasswordSchema.optional(),
    current_password: AnyPasswordSchema.optional(),
    mobile_token: MobileTokenSchema.nullable().optional(),
    user_type: z.enum(["admin", "user"]).optional().openapi({ description: "Admins only" }),
  })
  .openapi("UpdateUserRequest");

export const UsernameParams = z.object({ username: UsernameSchema });

export const PublicUserSchema = z
  .object({ username: z.string(), created_at: z.iso.datetime() })
  .openapi("User");

export const PrivateUserSchema = PublicUserSchema.extend({
  mobile_token: z.string().nullable(),
  user_type: z.enum(["admin", "user"]),
}).openapi("PrivateUser");

export const UserAsAdminSeesSchema = PublicUserSchema.extend({ user_type: z.enum(["admin", "user"]) }).openapi("UserWithType");

export const AuthResultSchema = z
  .object({ user: PrivateUserSchema, token: z.string() })
  .openapi("AuthResult");

export const UserPageSchema = pageOf(PublicUserSchema).openapi("UserPage");

export type RegisterInput = z.output<typeof RegisterBody>;
export type LoginInput = z.output<typeof LoginBody>;
export type UpdateUserInput = z.output<typeof UpdateUserBody>;
