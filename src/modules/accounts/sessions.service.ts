import { createHash, createSecretKey, randomUUID, type KeyObject } from "node:crypto";
import bcrypt from "bcrypt";
import jwt from "jsonwebtoken";
import { LRUCache } from "lru-cache";
import type { DataSource, EntityManager } from "typeorm";
import type { AuthContext, Authenticator, Credentials } from "../../http/auth-context";
import { unauthorized } from "../../http/api";
import { characterCount } from "../../http/schemas";
import type { Bus } from "../../realtime/bus";
import { SessionEntity } from "./session.entity";
import { MAX_PASSWORD_CHARACTERS, USERNAME_PATTERN, UserEntity } from "./user.entity";

export const ACCOUNTS_TOPIC = "accounts";

/** What the accounts module tells every process; sockets and caches react to it. */
export type AccountsEvent =
  | { kind: "session_ended"; userId: string; sessionId: string }
  /** All of a user's sessions but `keep` ended (password change, deletion). */
  | { kind: "sessions_ended"; userId: string; keep: string | null }
  | { kind: "user_changed"; userId: string }
  | { kind: "user_deleted"; userId: string };

export interface SessionServiceOptions {
  dataSource: DataSource;
  bus: Bus;
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

type CachedAuth = Pick<AuthContext, "user" | "sessionId">;

/**
 * Tokens, sessions and credential checks. A bearer token is a JWT naming a session row;
 * the row's existence is what makes it valid, so logout and password changes take effect
 * at once. Positive verifications are cached briefly and dropped on every process when
 * the bus says the user or session changed.
 */
export class SessionService implements Authenticator {
  private readonly bearerCache = new LRUCache<string, CachedAuth>({ max: 100_000, ttl: SESSION_CACHE_MS });
  private readonly basicCache: LRUCache<string, CachedAuth> | null;
  /**
   * What ended or changed lately, and when: a verification that was reading the database
   * while it happened must not be trusted or cached.
   */
  private readonly recentEnds = new LRUCache<string, { at: number; keep: string | null }>({ max: 100_000, ttl: 2 * SESSION_CACHE_MS });
  private readonly dummyHash: string;
  /** A KeyObject, so jsonwebtoken does not parse the secret again on every verification. */
  private readonly jwtKey: KeyObject;

  constructor(private readonly options: SessionServiceOptions) {
    this.basicCache =
      options.basicAuthCacheSeconds > 0
        ? new LRUCache({ max: 10_000, ttl: options.basicAuthCacheSeconds * 1000 })
        : null;
    // Compared against when the user does not exist, so both failures cost one bcrypt.
    this.dummyHash = bcrypt.hashSync(randomUUID(), options.bcryptRounds);
    this.jwtKey = createSecretKey(Buffer.from(options.jwtSecret, "utf8"));
  }

  async start(): Promise<void> {
    await this.options.bus.subscribe(ACCOUNTS_TOPIC, (event) => this.forget(event as AccountsEvent));
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
    await this.publish({ kind: "session_ended", userId, sessionId });
  }

  /** Ends every session of the user but `keep`, in the caller's transaction; publish after commit. */
  async endOtherSessions(manager: EntityManager, userId: string, keep: string | null): Promise<AccountsEvent> {
    const query = manager.createQueryBuilder().delete().from(SessionEntity).where("user_id = :userId", { userId });
    if (keep) query.andWhere("id <> :keep", { keep });
    await query.execute();
    return { kind: "sessions_ended", userId, keep };
  }

  /** Applies the event to this process at once, then tells the others. */
  publish(event: AccountsEvent): Promise<void> {
    this.forget(event);
    return this.options.bus.publish(ACCOUNTS_TOPIC, event);
  }

  async authenticate({ authorization, accessToken }: Credentials): Promise<AuthContext> {
    if (authorization) {
      const [scheme, value = ""] = authorization.trim().split(/\s+/, 2);
      if (/^bearer$/i.test(scheme)) return this.verifyBearer(value);
      if (/^basic$/i.test(scheme)) return this.verifyBasic(value);
      throw unauthorized("The Authorization scheme must be Bearer or Basic.");
    }
    if (accessToken) return this.verifyBearer(accessToken);
    throw unauthorized("This route needs an Authorization header (Bearer token or Basic credentials).");
  }

  /** Verifies a bearer token; used by the Socket.IO handshake as well. */
  async verifyBearer(token: string): Promise<AuthContext> {
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
    const cached = this.bearerCache.get(sessionId);
    if (cached) return { ...cached, expiresAt, checkedAt };
    const user = await this.options.dataSource
      .getRepository(UserEntity)
      .createQueryBuilder("u")
      .innerJoin(SessionEntity, "s", "s.user_id = u.id")
      .where("s.id = :sessionId AND s.expires_at > now() AND u.id = :userId", { sessionId, userId })
      .getOne();
    if (!user) throw unauthorized("The session has ended; sign in again.");
    const auth: AuthContext = { user, sessionId, expiresAt, checkedAt };
    // The session may have ended while the row was being read.
    if (this.revokedSince(auth, checkedAt)) throw unauthorized("The session has ended; sign in again.");
    if (!this.changedSince(userId, checkedAt)) this.bearerCache.set(sessionId, { user, sessionId });
    return auth;
  }

  recentlyVerified(authorization: string): boolean {
    const [scheme, value = ""] = authorization.trim().split(/\s+/, 2);
    const credentials = /^basic$/i.test(scheme) ? decodeBasic(value) : null;
    return credentials !== null && (this.basicCache?.has(credentials.cacheKey) ?? false);
  }

  private async verifyBasic(encoded: string): Promise<AuthContext> {
    const checkedAt = Date.now();
    const credentials = decodeBasic(encoded);
    if (!credentials) throw unauthorized("Basic credentials must be base64(username:password).");
    const { username, password, cacheKey } = credentials;
    const cached = this.basicCache?.get(cacheKey);
    if (cached) return { ...cached, expiresAt: null, checkedAt };
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
    if (!user || !passwordMatches || this.revokedSince({ user, sessionId: null }, checkedAt))
      throw unauthorized("Invalid username or password.", { credentialFailure: true });
    if (!this.changedSince(user.id, checkedAt)) this.basicCache?.set(cacheKey, { user, sessionId: null });
    return { user, sessionId: null, expiresAt: null, checkedAt };
  }

  /** True when the session of `auth` ended (logout, password change, deletion) after `since`. */
  revokedSince(auth: Pick<AuthContext, "user" | "sessionId">, since: number): boolean {
    const session = auth.sessionId ? this.recentEnds.get(`session:${auth.sessionId}`) : undefined;
    if (session && session.at >= since) return true;
    const user = this.recentEnds.get(`user:${auth.user.id}`);
    return user !== undefined && user.at >= since && (auth.sessionId === null || user.keep !== auth.sessionId);
  }

  private changedSince(userId: string, since: number): boolean {
    const changed = this.recentEnds.get(`changed:${userId}`);
    return changed !== undefined && changed.at >= since;
  }

  private forget(event: AccountsEvent): void {
    const at = Date.now();
    if (event.kind === "session_ended") {
      this.bearerCache.delete(event.sessionId);
      this.recentEnds.set(`session:${event.sessionId}`, { at, keep: null });
      return;
    }
    this.recentEnds.set(`changed:${event.userId}`, { at, keep: null });
    const keep = event.kind === "sessions_ended" ? event.keep : null;
    if (event.kind !== "user_changed") this.recentEnds.set(`user:${event.userId}`, { at, keep });
    for (const [key, auth] of this.bearerCache.entries())
      if (auth.user.id === event.userId && (event.kind === "user_changed" || key !== keep)) this.bearerCache.delete(key);
    if (this.basicCache)
      for (const [key, auth] of this.basicCache.entries()) if (auth.user.id === event.userId) this.basicCache.delete(key);
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

/** Whether an accounts event ends the connection of a user signed in with `sessionId` (null: HTTP Basic). */
export function endsConnection(event: AccountsEvent, userId: string, sessionId: string | null): boolean {
  switch (event.kind) {
    case "session_ended":
      return event.sessionId === sessionId;
    case "sessions_ended":
      // HTTP Basic (no session) ends too: its password is what changed.
      return event.userId === userId && (sessionId === null || event.keep !== sessionId);
    case "user_deleted":
      return event.userId === userId;
    default:
      return false;
  }
}
