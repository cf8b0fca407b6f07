import { forbidden } from "./errors";
import type { Principal } from "./principal";

/** One rule per action: may this principal do it to this resource? */
export type Rules<R, P extends Principal = Principal> = Record<string, (principal: P, resource: R) => boolean>;

export interface Policy<R, A extends string, P extends Principal> {
  can(principal: P, action: A, resource: R): boolean;
  /** Throws 403 (or the error `deny` builds) unless the principal may. */
  authorize(principal: P, action: A, resource: R): void;
}

/**
 * A module's authorization, kept in one place apart from its routes and socket handlers,
 * which ask `authorize(principal, "update", room)` rather than compare ids. `deny` says
 * what a refusal looks like per action (a 404 where existence must not show).
 */
export function definePolicy<R, P extends Principal, T extends Rules<R, P>>(
  rules: T,
  deny: (action: keyof T & string, resource: R) => Error = (action) => forbidden(`You may not ${action.replace(/_/g, " ")} this.`),
): Policy<R, keyof T & string, P> {
  return {
    can: (principal, action, resource) => rules[action](principal, resource),
    authorize(principal, action, resource) {
      if (!rules[action](principal, resource)) throw deny(action, resource);
    },
  };
}
