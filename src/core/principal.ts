/**
 * Who is on the other end of a request or connection: a user account, a pair identity,
 * or whatever kind a module authenticates. The kernel knows only this shape; the module
 * that issues a kind extends it with what its own code needs (accounts adds the user row).
 */
export interface Principal {
  /** The kind of principal, named by the module that authenticates it ("user", "pair"). */
  kind: string;
  /** Unique within its kind. */
  id: string;
  /** What others see it as (a username). */
  name: string;
  /** The credential instance (a bearer session); null when the credentials are the secret itself (HTTP Basic). */
  sessionId: string | null;
  /** When the credentials expire (ms since the epoch); null when they do not. */
  expiresAt: number | null;
  /** When the credentials were checked (ms since the epoch). */
  checkedAt: number;
}

/**
 * What a module tells every process when credentials or rights change. `ended` ends
 * connections: one session (`sessionId`), or every one of the principal but `keep`
 * (credentials changed: HTTP Basic ends too, as its password is what changed). `changed`
 * leaves them open but tells their doors to look again (a demotion, a new name).
 */
export type PrincipalEvent =
  | { type: "ended"; kind: string; id: string; sessionId?: string; keep?: string | null }
  | { type: "changed"; kind: string; id: string };

export const PRINCIPALS_TOPIC = "principals";

export const principalKey = (principal: Pick<Principal, "kind" | "id">) => `${principal.kind}:${principal.id}`;

/** Whether the event ends a connection made with these credentials. */
export function endsConnection(event: PrincipalEvent, principal: Pick<Principal, "kind" | "id" | "sessionId">): boolean {
  if (event.type !== "ended" || event.kind !== principal.kind || event.id !== principal.id) return false;
  if (event.sessionId !== undefined) return event.sessionId === principal.sessionId;
  return principal.sessionId === null || event.keep !== principal.sessionId;
}
