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

/** Who may do what to an account. */
export const accountsPolicy = definePolicy<UserEntity, UserPrincipal, Record<"update" | "delete", (p: UserPrincipal, target: UserEntity) => boolean>>(
  {
    update: (principal, target) => principal.id === target.id,
    delete: (principal, target) => principal.id === target.id,
  },
  (action) => forbidden(`Only the user themself may ${action === "update" ? "change" : "delete"} their account.`),
);
