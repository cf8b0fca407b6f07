import { randomUUID } from "node:crypto";
import type { DataSource, EntityManager } from "typeorm";
import { FOREIGN_KEY_VIOLATION, isUniqueViolation, postgresCode } from "../../db/errors";
import { DomainError, badRequest, conflict, notFound, unauthorized } from "../../core/errors";
import { pageByName } from "../../db/paging";
import type { Page } from "../../core/pagination";
import type { Logger } from "../../logger";
import { presentOwnUser, presentUser, presentUserToAdmin, type PrivateUser, type PublicUser } from "./accounts.presenters";
import type { LoginInput, RegisterInput, UpdateUserInput } from "./accounts.schemas";
import type { DeletedUser, UserDeletedHook } from "../../core/module";
import type { PrincipalEvent } from "../../core/principal";
import { USER_PRINCIPAL, type SessionService, type UserPrincipal } from "./sessions.service";
import { accountsPolicy } from "./accounts.policy";
import { UserEntity } from "./user.entity";

export interface AuthResult {
  user: PrivateUser;
  token: string;
}

export class AccountsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly sessions: SessionService,
    private readonly log: Logger,
    /** Every module's part in deleting a user (the kernel's `userDeletedHooks`). */
    private readonly cleanups: () => UserDeletedHook[],
  ) {}

  async register(input: RegisterInput): Promise<AuthResult> {
    const passwordHash = await this.sessions.hashPassword(input.password);
    try {
      return await this.dataSource.transaction(async (manager) => {
        const user = await this.insertUser(manager, {
          username: input.username,
          passwordHash,
          mobileToken: input.mobile_token ?? null,
          userType: "user",
        });
        return { user: presentOwnUser(user), token: await this.sessions.issueToken(manager, user) };
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict(`The username "${input.username}" is taken.`);
      throw error;
    }
  }

  async login(input: LoginInput): Promise<AuthResult> {
    const user = await this.findByUsername(this.dataSource.manager, input.username);
    const passwordMatches = await this.sessions.checkPassword(user, input.password);
    if (!user || !passwordMatches) throw unauthorized("Invalid username or password.", { credentialFailure: true });
    const token = await this.dataSource
      .transaction(async (manager) => {
        // Expired sessions of this user go when they sign in again, so the table stays small.
        await manager.query(`DELETE FROM sessions WHERE user_id = $1 AND expires_at <= now()`, [user.id]);
        return this.sessions.issueToken(manager, user);
      })
      .catch((error: unknown) => {
        // The user was deleted while signing in: their credentials are no longer valid.
        if (postgresCode(error) === FOREIGN_KEY_VIOLATION) throw unauthorized("Invalid username or password.");
        throw error;
      });
    return { user: presentOwnUser(user), token };
  }

  /** Ends the bearer session; HTTP Basic has no session, so there is nothing to end. */
  async logout(auth: UserPrincipal): Promise<void> {
    if (auth.sessionId) await this.sessions.endSession(auth.user.id, auth.sessionId);
  }

  /** Users by name, case-insensitively. */
  listUsers(limit: number, cursor?: string): Promise<Page<PublicUser>> {
    const query = this.dataSource.getRepository(UserEntity).createQueryBuilder("u");
    return pageByName(query, "u.username", { limit, cursor }, presentUser);
  }

  async getUser(username: string): Promise<PublicUser> {
    return presentUser(await this.requireUser(this.dataSource.manager, username));
  }

  async updateUser(auth: UserPrincipal, username: string, input: UpdateUserInput): Promise<PrivateUser | PublicUser> {
    const target = await this.requireUser(this.dataSource.manager, username);
    const ownFields = input.password !== undefined || input.current_password !== undefined || input.mobile_token !== undefined;
    if (input.user_type !== undefined) accountsPolicy.authorize(auth, "set_user_type", target);
    if (ownFields || input.user_type === undefined) accountsPolicy.authorize(auth, "update", target);
    if (input.password !== undefined) {
      if (input.current_password === undefined)
        throw badRequest("Changing the password needs current_password.", [
          { field: "body.current_password", message: "required when password is given" },
        ]);
      if (!(await this.sessions.checkPassword(target, input.current_password)))
        throw new DomainError(403, "current_password is wrong.", { credentialFailure: true });
    }
    const passwordHash = input.password !== undefined ? await this.sessions.hashPassword(input.password) : undefined;
    const events: PrincipalEvent[] = [{ type: "changed", kind: USER_PRINCIPAL, id: target.id }];
    const updated = await this.dataSource.transaction(async (manager) => {
      const changes: Partial<UserEntity> = { updatedAt: new Date() };
      if (passwordHash) changes.passwordHash = passwordHash;
      if (input.mobile_token !== undefined) changes.mobileToken = input.mobile_token;
      if (input.user_type !== undefined && input.user_type !== target.userType) {
        if (input.user_type === "user") await this.keepAnAdmin(manager, "demote the last admin");
        changes.userType = input.user_type;
      }
      const { affected } = await manager.update(UserEntity, { id: target.id }, changes);
      // Deleted since it was read (a DELETE racing this PATCH).
      if (!affected) throw notFound(`No user is named "${username}".`);
      if (passwordHash) events.push(await this.sessions.endOtherSessions(manager, target.id, auth.sessionId));
      return manager.findOneByOrFail(UserEntity, { id: target.id });
    });
    for (const event of events) await this.sessions.publish(event);
    return updated.id === auth.id ? presentOwnUser(updated) : presentUserToAdmin(updated);
  }

  /** Locks the admins, so two admins leaving at once cannot leave none; 409 when this is the last. */
  private async keepAnAdmin(manager: EntityManager, what: string): Promise<void> {
    const admins = await manager.query(`SELECT id FROM users WHERE user_type = 'admin' FOR UPDATE`);
    if (admins.length <= 1) throw conflict(`Cannot ${what}; make another admin first.`);
  }

  async deleteUser(auth: UserPrincipal, username: string): Promise<void> {
    const target = await this.requireUser(this.dataSource.manager, username);
    accountsPolicy.authorize(auth, "delete", target);
    const afterCommit = await this.dataSource.transaction(async (manager) => {
      if (target.userType === "admin") await this.keepAnAdmin(manager, "delete the last admin");
      const callbacks: Array<() => Promise<void>> = [];
      const deleted: DeletedUser = { id: target.id, username: target.username };
      for (const cleanup of this.cleanups()) {
        const callback = await cleanup(manager, deleted);
        if (callback) callbacks.push(callback);
      }
      // Sessions go with the user (ON DELETE CASCADE).
      await manager.delete(UserEntity, { id: target.id });
      return callbacks;
    });
    await this.sessions.publish({ type: "ended", kind: USER_PRINCIPAL, id: target.id, keep: null });
    for (const callback of afterCommit) {
      await callback().catch((error: unknown) => this.log.error({ err: error }, "cleanup after user deletion failed"));
    }
  }

  /**
   * Creates the configured admin on a fresh install (when no admin exists) and warns
   * while its password is still the default one.
   */
  async ensureAdmin(admin: { username: string; password: string }, defaultPassword: string): Promise<void> {
    let user = await this.findAdmin(admin.username);
    if (!user) {
      try {
        user = await this.insertUser(this.dataSource.manager, {
          username: admin.username,
          passwordHash: await this.sessions.hashPassword(admin.password),
          mobileToken: null,
          userType: "admin",
        });
        this.log.info({ username: admin.username }, "created the admin account");
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        // Another process created it at the same moment, or a user holds the name.
        user = await this.findAdmin(admin.username);
        if (!user) {
          this.log.warn({ username: admin.username }, "could not create the admin account: a user already has that name");
          return;
        }
      }
    }
    // Whatever ADMIN_PASSWORD says now: what counts is the password the account has.
    if (await this.sessions.checkPassword(user, defaultPassword))
      this.log.warn(
        { username: user.username },
        "the admin account still has the default password: change it (PATCH /users/:username) or set ADMIN_PASSWORD before the first start",
      );
  }

  /** The configured admin account if it is one, else any admin. */
  private async findAdmin(username: string): Promise<UserEntity | null> {
    const named = await this.findByUsername(this.dataSource.manager, username);
    if (named?.userType === "admin") return named;
    return this.dataSource.getRepository(UserEntity).findOneBy({ userType: "admin" });
  }

  findById(manager: EntityManager, id: string): Promise<UserEntity | null> {
    return manager.findOneBy(UserEntity, { id });
  }

  findByUsername(manager: EntityManager, username: string): Promise<UserEntity | null> {
    return manager
      .getRepository(UserEntity)
      .createQueryBuilder("u")
      .where("lower(u.username) = lower(:username)", { username })
      .getOne();
  }

  async requireUser(manager: EntityManager, username: string): Promise<UserEntity> {
    const user = await this.findByUsername(manager, username);
    if (!user) throw notFound(`No user is named "${username}".`);
    return user;
  }

  private async insertUser(
    manager: EntityManager,
    fields: Pick<UserEntity, "username" | "passwordHash" | "mobileToken" | "userType">,
  ): Promise<UserEntity> {
    const now = new Date();
    const user = manager.create(UserEntity, { id: randomUUID(), ...fields, createdAt: now, updatedAt: now });
    await manager.insert(UserEntity, user);
    return user;
  }
}
