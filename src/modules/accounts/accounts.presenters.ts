import type { UserEntity } from "./user.entity";

export interface PublicUser {
  username: string;
  created_at: string;
}

export interface PrivateUser extends PublicUser {
  mobile_token: string | null;
  user_type: "admin" | "user";
}

/** What everyone may see of a user. */
export function presentUser(user: UserEntity): PublicUser {
  return { username: user.username, created_at: user.createdAt.toISOString() };
}

/** What only the user themself sees. Never the password hash. */
export function presentOwnUser(user: UserEntity): PrivateUser {
  return { ...presentUser(user), mobile_token: user.mobileToken, user_type: user.userType };
}

/** What an admin sees of another user: the public fields and the role. */
export function presentUserToAdmin(user: UserEntity): PublicUser & { user_type: "admin" | "user" } {
  return { ...presentUser(user), user_type: user.userType };
}
