import type { IncomingHttpHeaders } from "node:http";
import { unauthorized } from "../core/errors";
import type { Principal } from "../core/principal";

export interface Credentials {
  authorization?: string;
  /** `?access_token=`: only Server-Sent Events routes pass it, since EventSource cannot send headers. */
  accessToken?: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, for credentials that may travel in it (a pair identity's `privateId`). */
  body?: unknown;
}

/** One way of proving who you are over HTTP (a bearer token, HTTP Basic, a pair identity's header). */
export interface HttpAuthenticator {
  /** Whether the request presents credentials of this kind. */
  claims(credentials: Credentials): boolean;
  /** The principal, or a 401 DomainError. */
  authenticate(credentials: Credentials): Promise<Principal>;
  /**
   * For password-bearing credentials (HTTP Basic): "verified" when these were checked
   * lately (no guess, so not counted), "unverified" when a password will be checked.
   */
  presentsPassword?(credentials: Credentials): "verified" | "unverified" | null;
}

/** The modules' authenticators, asked in order; the first that claims the credentials decides. */
export class Authenticators {
  constructor(private readonly list: HttpAuthenticator[]) {}

  authenticate(credentials: Credentials): Promise<Principal> {
    const authenticator = this.list.find((a) => a.claims(credentials));
    if (!authenticator) {
      if (credentials.authorization)
        throw unauthorized("The Authorization scheme must be Bearer or Basic.");
      throw unauthorized("This route needs credentials: an Authorization header (Bearer token or Basic credentials).");
    }
    return authenticator.authenticate(credentials);
  }

  presentsPassword(credentials: Credentials): "verified" | "unverified" | null {
    return this.list.find((a) => a.claims(credentials))?.presentsPassword?.(credentials) ?? null;
  }
}
