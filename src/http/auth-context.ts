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

export interface PresentedPassword {
  account: string;
  verified: boolean;
}

/** One way of proving who you are over HTTP (a bearer token, HTTP Basic, a pair identity's header). */
export interface HttpAuthenticator {
  /** Whether the request presents credentials of this kind. */
  claims(credentials: Credentials): boolean;
  /** The principal, or a 401 DomainError. */
  authenticate(credentials: Credentials): Promise<Principal>;
  /**
   * For password-bearing credentials (HTTP Basic): the account they name, and whether they
   * were verified lately (no guess, so not counted) or a password will be checked.
   */
  presentsPassword?(credentials: Credentials): PresentedPassword | null;
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

  presentsPassword(credentials: Credentials): PresentedPassword | null {
    return this.list.find((a) => a.claims(credentials))?.presentsPassword?.(credentials) ?? null;
  }
}
