import { createHash, createSecretKey, randomUUID, type KeyObject } from "node:crypto";
import bcrypt from "bcrypt";
import jwt from "jsonwebtoken";
import { LRUCache } from "lru-cache";
import type { DataSource, EntityManager } from "typeorm";
import { unauthorized } from "../../core/errors";
import type { SocketAuthenticator } from "../../core/module";
import type { Principal, PrincipalEvent } from "../../core/principal";
import { characterCount } from "../../core/text";
import type { Credentials, HttpAuthenticator, PresentedPassword } from "../../http/auth-context";
import type { Connections } from "../../realtime/connections";
import { accountReads } from "./account-reads";
import { userStandings } from "./session-check";
import { SessionEntity } from "./session.entity";
import { MAX_PASSWORD_CHARACTERS, USERNAME_PATTERN, UserEntity } from "./user.entity";

/** A signed-in user account. */
export interface UserPrincipal extends Principal {
  kind: typeof USER_PRINCIPAL;
  user: UserEntity;
}

export const USER_PRINCIPAL = "user";

export interface SessionServiceOptions {
  dataSource: DataSource;
  connections: Connections;
  jwtSecret: string;
  jwtTtlSeconds: number;
  bcryptRounds: number;
  basicAuthCacheSeconds: number;
}

const JWT_ALGORITHM = "HS256";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const isUuid = (value: unknown): value is string => typeof value === "string" && UUID.test(value);

/**
 * bcrypt reads only the first 72 bytes of its input, and passwords may be 128 characters
 * (up to 512 bytes): hashing them first makes every character count.
 */
function prehash(password: string): string {
  return createHash("sha256").update(password, "utf8").digest("base64");
}
/** How long a verified bearer session is trusted without asking the database again. */
const SESSION_CACHE_MS = 10_000;

type CachedAuth = { user: UserEntity; sessionId: string | null };

/** A user principal; its account row (with the password hash) is a non-enumerable field. */
export function toPrincipal(user: UserEntity, sessionId: string | null, expiresAt: number | null, checkedAt: number): UserPrincipal {
  const principal = { kind: USER_PRINCIPAL, id: user.id, name: user.username, sessionId, expiresAt, checkedAt } as UserPrincipal;
  // Not enumerable: the account row (with its password hash) stays out of whatever
  // serialises a principal, such as the Redis adapter answering another process'
  // fetchSockets() with socket.data, or a log line.
  return Object.defineProperty(principal, "user", { value: user, enumerable: false });
}

/**
 * Tokens, sessions and credential checks. A bearer token is a JWT naming a session row;
 * the row's existence is what makes it valid, so logout and password changes take effect
 * at once. Positive verifications are cached briefly and dropped on every process when
 * the bus says the user or session changed.
 */
export class SessionService {
  private readonly bearerCache = new LRUCache<string, CachedAuth>({ max: 100_000, ttl: SESSION_CACHE_MS });
  private readonly basicCache: LRUCache<string, CachedAuth> | null;
  private readonly dummyHash: string;
  /** A KeyObject, so jsonwebtoken does not parse the secret again on every verification. */
  private readonly jwtKey: KeyObject;
  private readonly reads: ReturnType<typeof accountReads>;

  constructor(private readonly options: SessionServiceOptions) {
    this.basicCache =
      options.basicAuthCacheSeconds > 0
        ? new LRUCache({ max: 10_000, ttl: options.basicAuthCacheSeconds * 1000 })
        : null;
    // Compared against when the user does not exist, so both failures cost one bcrypt.
    this.dummyHash = bcrypt.hashSync(randomUUID(), options.bcryptRounds);
    this.jwtKey = createSecretKey(Buffer.from(options.jwtSecret, "utf8"));
    this.reads = accountReads(options.dataSource);
  }

  start(): void {
    this.options.connections.onEvent((event) => this.forget(event));
    this.options.connections.addCheck(USER_PRINCIPAL, (principals) => {
      // Cached verifications go too: their events may be lost with the others.
      this.bearerCache.clear();
      this.basicCache?.clear();
      return userStandings(this.options.dataSource, principals as UserPrincipal[]);
    });
  }

  /** A cached verification, unless events may be lost (the bus is down): then the database decides. */
  private cached(cache: LRUCache<string, CachedAuth> | null, key: string): CachedAuth | undefined {
    return this.options.connections.live ? cache?.get(key) : undefined;
  }

  /** Bearer tokens and HTTP Basic over HTTP. */
  httpAuthenticators(): HttpAuthenticator[] {
    const scheme = (credentials: Credentials) => credentials.authorization?.trim().split(/\s+/, 2) ?? [];
    return [
      {
        claims: (c) => (c.authorization !== undefined && /^bearer$/i.test(scheme(c)[0] ?? "")) || (!c.authorization && c.accessToken !== undefined),
        authenticate: (c) => this.verifyBearer(c.authorization ? (scheme(c)[1] ?? "") : (c.accessToken ?? "")),
      },
      {
        claims: (c) => c.authorization !== undefined && /^basic$/i.test(scheme(c)[0] ?? ""),
        authenticate: (c) => this.verifyBasic(scheme(c)[1] ?? ""),
        presentsPassword: (c) => this.presentedPassword(scheme(c)[1] ?? ""),
      },
    ];
  }

  /** `auth: {token}` at the Socket.IO handshake. */
  socketAuthenticator(): SocketAuthenticator {
    return {
      claims: (auth) => typeof auth.token === "string" && auth.token !== "",
      authenticate: (auth) => this.verifyBearer(auth.token as string),
    };
  }

  hashPassword(password: string): Promise<string> {
    return bcrypt.hash(prehash(password), this.options.bcryptRounds);
  }

  /** Same work whether or not the user exists, so timing does not reveal which. */
  async checkPassword(user: UserEntity | null, password: string): Promise<boolean> {
    const matches = await bcrypt.compare(prehash(password), user?.passwordHash ?? this.dummyHash);
    return user !== null && matches;
  }

  /** Creates a session in the caller's transaction and returns its bearer token. */
  async issueToken(manager: EntityManager, user: UserEntity): Promise<string> {
    const id = randomUUID();
    const now = Date.now();
    await manager.insert(SessionEntity, {
      id,
      userId: user.id,
      createdAt: new Date(now),
      expiresAt: new Date(now + this.options.jwtTtlSeconds * 1000),
    });
    return jwt.sign({}, this.jwtKey, {
      algorithm: JWT_ALGORITHM,
      subject: user.id,
      jwtid: id,
      expiresIn: this.options.jwtTtlSeconds,
    });
  }

  async endSession(userId: string, sessionId: string): Promise<void> {
    await this.options.dataSource.getRepository(SessionEntity).delete({ id: sessionId });
    await this.publish({ type: "ended", kind: USER_PRINCIPAL, id: userId, sessionId });
  }

  /** Ends every session of the user but `keep`, in the caller's transaction; publish after commit. */
  async endOtherSessions(manager: EntityManager, userId: string, keep: string | null): Promise<PrincipalEvent> {
    const query = manager.createQueryBuilder().delete().from(SessionEntity).where("user_id = :userId", { userId });
    if (keep) query.andWhere("id <> :keep", { keep });
    await query.execute();
    return { type: "ended", kind: USER_PRINCIPAL, id: userId, keep };
  }

  /** Applies the event to this process at once (caches, connections), then tells the others. */
  publish(event: PrincipalEvent): Promise<void> {
    return this.options.connections.publish(event);
  }

  /** Verifies a bearer token (HTTP, `?access_token=`, the Socket.IO handshake). */
  async verifyBearer(token: string): Promise<UserPrincipal> {
    const checkedAt = Date.now();
    let claims: jwt.JwtPayload;
    try {
      claims = jwt.verify(token, this.jwtKey, { algorithms: [JWT_ALGORITHM] }) as jwt.JwtPayload;
    } catch {
      throw unauthorized("The bearer token is invalid or has expired.");
    }
    const { jti: sessionId, sub: userId, exp } = claims;
    if (!isUuid(sessionId) || !isUuid(userId) || typeof exp !== "number")
      throw unauthorized("The bearer token is invalid or has expired.");
    const expiresAt = exp * 1000;
    const cached = this.cached(this.bearerCache, sessionId);
    if (cached) return toPrincipal(cached.user, sessionId, expiresAt, checkedAt);
    const user = await this.reads.sessionUser(sessionId);
    if (!user || user.id !== userId) throw unauthorized("The session has ended; sign in again.");
    const principal = toPrincipal(user, sessionId, expiresAt, checkedAt);
    // The session may have ended while the row was being read.
    if (this.options.connections.revokedSince(principal, checkedAt)) throw unauthorized("The session has ended; sign in again.");
    if (!this.options.connections.changedSince(principal, checkedAt)) this.bearerCache.set(sessionId, { user, sessionId });
    return principal;
  }

  /** The account Basic credentials name, and whether they were verified lately. */
  private presentedPassword(encoded: string): PresentedPassword {
    const credentials = decodeBasic(encoded);
    // Malformed: refused before any password is checked.
    if (!credentials) return { account: "", verified: false };
    return { account: credentials.username, verified: this.basicCache?.has(credentials.cacheKey) ?? false };
  }

  private async verifyBasic(encoded: string): Promise<UserPrincipal> {
    const checkedAt = Date.now();
    const credentials = decodeBasic(encoded);
    if (!credentials) throw unauthorized("Basic credentials must be base64(username:password).");
    const { username, password, cacheKey } = credentials;
    const cached = this.basicCache?.get(cacheKey);
    if (cached && this.options.connections.live) return toPrincipal(cached.user, null, null, checkedAt);
    if (cached) {
      // Events may be lost (the bus is down): the row decides, but an unchanged password
      // hash needs no bcrypt to tell (a bcrypt per request would be the outage's cost).
      const current = await this.reads.userById(cached.user.id);
      if (current?.passwordHash === cached.user.passwordHash) return toPrincipal(current, null, null, checkedAt);
      this.basicCache?.delete(cacheKey);
    }
    // Names that could not have been registered are unknown users, not database errors.
    const user =
      USERNAME_PATTERN.test(username) && characterCount(password) <= MAX_PASSWORD_CHARACTERS
        ? await this.options.dataSource
            .getRepository(UserEntity)
            .createQueryBuilder("u")
            .where("lower(u.username) = lower(:username)", { username })
            .getOne()
        : null;
    const passwordMatches = await this.checkPassword(user, password);
    // A password changed (or the user deleted) while we checked the old one: refuse it.
    const principal = user ? toPrincipal(user, null, null, checkedAt) : null;
    if (!principal || !passwordMatches || this.options.connections.revokedSince(principal, checkedAt))
      throw unauthorized("Invalid username or password.", { credentialFailure: true });
    if (!this.options.connections.changedSince(principal, checkedAt)) this.basicCache?.set(cacheKey, { user: principal.user, sessionId: null });
    return principal;
  }

  /** Drops cached verifications that the event makes stale. */
  private forget(event: PrincipalEvent): void {
    if (event.kind !== USER_PRINCIPAL) return;
    if (event.type === "ended" && event.sessionId !== undefined) {
      this.bearerCache.delete(event.sessionId);
      return;
    }
    const keep = event.type === "ended" ? (event.keep ?? null) : null;
    for (const [key, auth] of this.bearerCache.entries())
      if (auth.user.id === event.id && (event.type === "changed" || key !== keep)) this.bearerCache.delete(key);
    if (this.basicCache)
      for (const [key, auth] of this.basicCache.entries()) if (auth.user.id === event.id) this.basicCache.delete(key);
  }
}

/** base64(username:password), and the key its verification is cached under; null when malformed. */
function decodeBasic(encoded: string): { username: string; password: string; cacheKey: string } | null {
  const decoded = Buffer.from(encoded, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 1) return null;
  const username = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  return { username, password, cacheKey: createHash("sha256").update(`${username.toLowerCase()}\0${password}`).digest("base64") };
}
