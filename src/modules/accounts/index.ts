import { DEFAULT_ADMIN_PASSWORD } from "../../config";
import { defineModule } from "../../core/module";
import { registerAccountsRoutes } from "./accounts.routes";
import { AccountsService } from "./accounts.service";
import { resolveSecret } from "../../core/secrets";
import { Accounts1763700000000 } from "./migrations/1763700000000-accounts";
import { SessionEntity } from "./session.entity";
import { SessionService } from "./sessions.service";
import { UserEntity } from "./user.entity";

export interface AccountsExports {
  accounts: AccountsService;
  sessions: SessionService;
}

/** Users, sessions and credentials: the `user` principal (bearer tokens, HTTP Basic, `auth: {token}`). */
export const accountsModule = defineModule<AccountsExports>({
  name: "accounts",
  entities: [UserEntity, SessionEntity],
  migrations: [Accounts1763700000000],
  async create(kernel) {
    const { config, dataSource, connections, log } = kernel;
    const sessions = new SessionService({
      dataSource,
      connections,
      jwtSecret: resolveSecret("jwt-secret", config.jwtSecret, config.dataDir),
      jwtTtlSeconds: config.jwtTtlSeconds,
      bcryptRounds: config.bcryptRounds,
      basicAuthCacheSeconds: config.basicAuthCacheSeconds,
    });
    sessions.start();
    const accounts = new AccountsService(dataSource, sessions, log, () => kernel.userDeletedHooks());
    await accounts.ensureAdmin(config.admin, DEFAULT_ADMIN_PASSWORD);
    return {
      exports: { accounts, sessions },
      authenticators: { http: sessions.httpAuthenticators(), socket: [sessions.socketAuthenticator()] },
      routes: (api) => registerAccountsRoutes(api, accounts, kernel.credentialLimiter),
    };
  },
});

export { asUser, isAdmin } from "./accounts.policy";
export { UsernameParams, UsernameSchema } from "./accounts.schemas";
export type { AccountsService } from "./accounts.service";
export { USER_PRINCIPAL, toPrincipal, type UserPrincipal } from "./sessions.service";
export type { UserEntity } from "./user.entity";
