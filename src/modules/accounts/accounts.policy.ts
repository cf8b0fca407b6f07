import { forbidden } from "../../core/errors";
import { definePolicy } from "../../core/policy";
import type { Principal } from "../../core/principal";
import { USER_PRINCIPAL, type UserPrincipal } from "./sessions.service";
import type { UserEntity } from "./user.entity";

/** The principal as a user account; 403 for any other kind (a pair identity). */
export function asUser(principal: Principal): UserPrincipal {
  if (principal.kind !== USER_PRINCIPAL) throw forbidden("This needs a user account's credentials.");
  return principal as UserPrincipal;
}

export const isAdmin = (principal: Principal) => principal.kind === USER_PRINCIPAL && (principal as UserPrincipal).user.userType === "admin";

const DENIALS = {
  update: "Only the user themself may change their account's password or mobile token.",
  set_user_type: "Only an admin may set user_type.",
  delete: "Only the user themself or an admin may delete an account.",
};

/** Who may do what to an account. */
export const accountsPolicy = definePolicy<UserEntity, UserPrincipal, Record<keyof typeof DENIALS, (p: UserPrincipal, target: UserEntity) => boolean>>(
  {
    update: (principal, target) => principal.id === target.id,
    set_user_type: (principal) => isAdmin(principal),
    delete: (principal, target) => principal.id === target.id || isAdmin(principal),
  },
  (action) => forbidden(DENIALS[action]),
);
