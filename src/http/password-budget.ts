import { ipKeyGenerator, type ClientRateLimitInfo, type Options, type Store } from "express-rate-limit";
import type { Logger } from "../logger";
import { tooMany, type RateLimitStores } from "./rate-limit";

const MINUTE_MS = 60_000;
/** The per-account window: longer than the per-address one, so many addresses add up. */
export const ACCOUNT_WINDOW_MS = 15 * MINUTE_MS;
/** How long after its last sign-in to an account an address stays exempt from that account's limit. */
const KNOWN_ADDRESS_MS = 7 * 24 * 60 * MINUTE_MS;

export interface PasswordBudgetLimits {
  /** Wrong passwords per client address per minute, every door together (RATE_LIMIT_AUTH_PER_MINUTE; 0: off). */
  perAddressPerMinute: number;
  /** Wrong passwords per account per 15 minutes from addresses it has not signed in from (RATE_LIMIT_AUTH_PER_ACCOUNT; 0: off). */
  perAccount: number;
}

/** Who presents a password: the client address, and the account it is for (as typed; case does not matter). */
export interface PasswordPresenter {
  ip?: string;
  account: string;
}

export interface PasswordAttempt {
  /** The password was right: it no longer counts, and the address is remembered for the account. */
  succeeded(): Promise<void>;
  /** The request failed before the password could prove wrong: it no longer counts. */
  forgive(): Promise<void>;
}

/**
 * The one budget of wrong passwords, whatever the door (login, HTTP Basic,
 * `current_password`, the lobby's login): per client address, and per account from
 * addresses that have not signed in to it lately. Each attempt counts as it starts (so a
 * burst of parallel guesses is limited like a sequence) and stops counting when the
 * password proves right; over a limit the password is not even checked, so a right guess
 * cannot be told from a wrong one. Requests that present no password never count.
 */
export interface FailedCredentialLimiter {
  /** Counts an attempt, or throws 429 when the address or the account is over its limit. */
  attempt(who: PasswordPresenter): Promise<PasswordAttempt>;
  /** Throws 429 when over a limit, counting nothing (credentials verified lately). */
  check(who: PasswordPresenter): Promise<void>;
}

const NOTHING_TO_UNDO: PasswordAttempt = { succeeded: async () => undefined, forgive: async () => undefined };

/** Limits nothing (both limits 0). */
export const NO_FAILED_CREDENTIAL_LIMIT: FailedCredentialLimiter = { attempt: async () => NOTHING_TO_UNDO, check: async () => undefined };

/** One fixed-window count in a store; a failing store counts nothing rather than refuse everyone. */
class Count {
  constructor(
    private readonly store: Store,
    private readonly tolerate: (error: unknown) => void,
  ) {}

  static async open(store: Store, windowMs: number, tolerate: (error: unknown) => void): Promise<Count> {
    await store.init?.({ windowMs } as Options);
    return new Count(store, tolerate);
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    try {
      return await this.store.get?.(key);
    } catch (error) {
      this.tolerate(error);
      return undefined;
    }
  }

  async increment(key: string): Promise<ClientRateLimitInfo | undefined> {
    try {
      return await this.store.increment(key);
    } catch (error) {
      this.tolerate(error);
      return undefined;
    }
  }

  async decrement(key: string): Promise<void> {
    try {
      await this.store.decrement(key);
    } catch (error) {
      this.tolerate(error);
    }
  }

  /** Starts the key's window again from now, with one hit. */
  async restart(key: string): Promise<void> {
    try {
      await this.store.resetKey(key);
      await this.store.increment(key);
    } catch (error) {
      this.tolerate(error);
    }
  }
}

export async function createFailedCredentialLimiter(limits: PasswordBudgetLimits, stores: RateLimitStores, log: Logger): Promise<FailedCredentialLimiter> {
  if (limits.perAddressPerMinute === 0 && limits.perAccount === 0) return NO_FAILED_CREDENTIAL_LIMIT;
  const tolerate = (error: unknown) => log.warn({ err: error }, "failed-credential limiter store failed");
  const byAddress = limits.perAddressPerMinute > 0 ? await Count.open(stores.create("failed-credentials"), MINUTE_MS, tolerate) : null;
  const byAccount = limits.perAccount > 0 ? await Count.open(stores.create("failed-credentials-account"), ACCOUNT_WINDOW_MS, tolerate) : null;
  const known = byAccount ? await Count.open(stores.create("known-addresses"), KNOWN_ADDRESS_MS, tolerate) : null;
  const keysOf = (who: PasswordPresenter) => {
    const address = ipKeyGenerator(who.ip ?? "unknown");
    const account = who.account.toLowerCase();
    return { address, account, known: `${account}\0${address}` };
  };
  // An address the owner signed in from keeps working while strangers exhaust the account's budget.
  const isKnown = async (key: string) => ((await known?.get(key))?.totalHits ?? 0) > 0;

  return {
    async check(who) {
      const keys = keysOf(who);
      const address = await byAddress?.get(keys.address);
      if (address && address.totalHits >= limits.perAddressPerMinute) throw tooMany(address.resetTime);
      if (!byAccount || (await isKnown(keys.known))) return;
      const account = await byAccount.get(keys.account);
      if (account && account.totalHits >= limits.perAccount) throw tooMany(account.resetTime);
    },
    async attempt(who) {
      const keys = keysOf(who);
      const address = await byAddress?.increment(keys.address);
      if (address && address.totalHits > limits.perAddressPerMinute) throw tooMany(address.resetTime);
      const countsForAccount = byAccount !== null && !(await isKnown(keys.known));
      const account = countsForAccount ? await byAccount.increment(keys.account) : undefined;
      if (account && account.totalHits > limits.perAccount) throw tooMany(account.resetTime);
      const uncount = async () => {
        if (address) await byAddress?.decrement(keys.address);
        if (account) await byAccount?.decrement(keys.account);
      };
      return {
        forgive: uncount,
        async succeeded() {
          await uncount();
          await known?.restart(keys.known);
        },
      };
    },
  };
}
