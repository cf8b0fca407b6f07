import type { UserEntity } from "../modules/accounts/user.entity";

/** Who made a request, and through which credentials. */
export interface AuthContext {
  user: UserEntity;
  /** The bearer token's session; null for HTTP Basic. */
  sessionId: string | null;
  /** When the bearer token expires (ms since the epoch); null for HTTP Basic. */
  expiresAt: number | null;
  /** When these credentials were checked (ms since the epoch). */
  checkedAt: number;
}

export interface Credentials {
  authorization?: string;
  /** `?access_token=`: only Server-Sent Events routes pass it, since EventSource cannot send headers. */
  accessToken?: string;
}

export interface Authenticator {
  /** Resolves the caller, or throws a 401 HttpError carrying WWW-Authenticate. */
  authenticate(credentials: Credentials): Promise<AuthContext>;
  /** Whether these are HTTP Basic credentials verified lately (no guess, so not counted). */
  recentlyVerified(authorization: string): boolean;
}
