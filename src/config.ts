import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { USERNAME_PATTERN } from "./core/text";

/**
 * The only reader of process.env and ormconfig.json. Every setting is validated here,
 * at start, so a bad value stops the server with a message that names it.
 */

const booleanish = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

/** A whole number written in decimal digits: "0x10", "1e3" and " " are mistakes, not numbers. */
const envInt = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^[0-9]+$/, "must be a whole number (decimal digits)")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const positiveInt = z.number().int().positive();

/** scheme://host[:port], as browsers send in Origin. */
const ORIGIN = /^https?:\/\/[^/\s?#]+$/;

/** ormconfig.json: the database settings (TypeORM's own names where they exist). */
const OrmConfigSchema = z.strictObject({
  $comment: z.string().optional(),
  type: z.literal("postgres").default("postgres"),
  url: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    .nullable()
    .default(null),
  poolSize: positiveInt.max(500).default(10),
  logging: z.boolean().default(false),
  connectTimeoutMS: positiveInt.default(5000),
  pglite: z
    .strictObject({ dataDir: z.string().min(1).default("./data/db") })
    .default({ dataDir: "./data/db" }),
});

const EnvSchema = z.object({
  PORT: envInt(0, 65535).default(9000),
  HOST: z.string().min(1).default("0.0.0.0"),
  PUBLIC_URL: z.url().optional(),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    .optional(),
  DATABASE_POOL_SIZE: envInt(1, 500).optional(),
  DATABASE_LOGGING: booleanish.optional(),
  DATA_DIR: z.string().min(1).default("./data"),
  PGLITE_DATA_DIR: z.string().min(1).optional(),
  UPLOADS_DIR: z.string().min(1).default("./uploads"),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL")
    .optional(),
  REDIS_PREFIX: z.string().min(1).max(100).default("convene:"),
  REDIS_COMMAND_TIMEOUT_MS: envInt(50, 10_000).default(500),
  BUS_RESYNC_SECONDS: envInt(1, 300).default(2),
  PROCESSES: envInt(1, 64).default(1),
  // A number first: "1" is one proxy hop, not "trust every proxy".
  TRUST_PROXY: z.union([envInt(0, 10), z.enum(["true", "false"]).transform((v) => v === "true")]).default(false),
  JWT_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  // At most 14 days: connections are closed by a timer when their token expires.
  JWT_TTL_SECONDS: envInt(1, 14 * 86_400).default(86_400),
  BCRYPT_ROUNDS: envInt(4, 15).default(10),
  BASIC_AUTH_CACHE_SECONDS: envInt(0, 3600).default(60),
  ADMIN_USERNAME: z
    .string()
    .regex(USERNAME_PATTERN, "must be 3-32 of A-Z a-z 0-9 _ . -")
    .default("admin"),
  ADMIN_PASSWORD: z.string().min(1).max(128).default("admin"),
  RATE_LIMIT_AUTH_PER_MINUTE: envInt(0).default(20),
  RATE_LIMIT_AUTH_PER_ACCOUNT: envInt(0).default(50),
  MAX_UPLOAD_BYTES: envInt(1).default(2 * 1024 ** 3),
  MAX_BODY_BYTES: envInt(1).default(100 * 1024),
  CORS_ORIGINS: z
    .string()
    .transform((list) => list.split(",").map((origin) => origin.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(ORIGIN, "each origin must be scheme://host[:port]")).min(1, "must name at least one origin"))
    .optional(),
  LOG_LEVEL: z
    .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
    .default("info"),
  SSE_HEARTBEAT_SECONDS: envInt(1, 3600).default(15),
  LOBBY_PING_SECONDS: envInt(1, 3600).default(30),
  CLIENT_BUFFER_LIMIT_BYTES: envInt(1).default(1024 * 1024),
  SHUTDOWN_GRACE_SECONDS: envInt(1, 600).default(10),
  DRAIN_DELAY_SECONDS: envInt(0, 300).default(5),
  REQUEST_TIMEOUT_SECONDS: envInt(1, 3600).default(30),
  UPLOAD_IDLE_TIMEOUT_SECONDS: envInt(1, 3600).default(30),
  MAX_INCOMPLETE_CONNECTIONS_PER_ADDRESS: envInt(0).default(5000),
  RATE_LIMIT_POSTS_PER_MINUTE: envInt(0).default(120),
  // STUN/TURN servers for WebRTC: a JSON array of {urls, username?, credential?}, or a comma-separated list of URLs.
  ICE_SERVERS: z.string().optional(),
  TURN_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  TURN_TTL_SECONDS: envInt(60, 7 * 86_400).default(86_400),
  STREAM_URL_TTL_SECONDS: envInt(60, 7 * 86_400).default(6 * 3600),
});

const IceServerSchema = z.strictObject({
  urls: z.union([z.string().regex(/^(stuns?|turns?):/, "must be a stun: or turn: URL"), z.array(z.string().regex(/^(stuns?|turns?):/, "must be a stun: or turn: URL")).min(1)]),
  username: z.string().optional(),
  credential: z.string().optional(),
});

export type IceServer = z.infer<typeof IceServerSchema>;

function parseIceServers(raw: string | undefined): IceServer[] | string {
  if (raw === undefined) return [];
  let value: unknown;
  if (raw.trim().startsWith("[")) {
    try {
      value = JSON.parse(raw);
    } catch {
      return "environment variable ICE_SERVERS: not valid JSON";
    }
  } else {
    value = raw.split(",").map((url) => ({ urls: url.trim() })).filter((s) => s.urls !== "");
  }
  const parsed = z.array(IceServerSchema).safeParse(value);
  return parsed.success ? parsed.data : describeIssues("environment variable ICE_SERVERS", parsed.error).join("; ");
}

export type DatabaseConfig =
  | { kind: "postgres"; url: string; poolSize: number; logging: boolean; connectTimeoutMS: number }
  | { kind: "pglite"; dataDir: string; logging: boolean; connectTimeoutMS: number };

export interface Config {
  port: number;
  host: string;
  /** Base for absolute URLs (Location headers); derived from the request when unset. */
  publicUrl: string | null;
  database: DatabaseConfig;
  dataDir: string;
  uploadsDir: string;
  redisUrl: string | null;
  /** Prefix of the bus' Redis channels, so several deployments (or test runs) can share one Redis. */
  redisPrefix: string;
  /** How long any Redis command may take before the caller goes on without it (Redis is optional at every moment). */
  redisCommandTimeoutMs: number;
  /** While Redis is unreachable, how often each process re-reads live streams and open connections' credentials from the database. */
  busResyncSeconds: number;
  /** Express' "trust proxy": true, false or the number of proxy hops in front of the server. */
  trustProxy: boolean | number;
  processes: number;
  /** null: generated on first start and kept in the data directory. */
  jwtSecret: string | null;
  jwtTtlSeconds: number;
  bcryptRounds: number;
  basicAuthCacheSeconds: number;
  admin: { username: string; password: string };
  rateLimitAuthPerMinute: number;
  /** Wrong passwords per account per 15 minutes from addresses that have not signed in to it lately; 0: no limit. */
  rateLimitAuthPerAccount: number;
  maxUploadBytes: number;
  maxBodyBytes: number;
  /** null: any origin. */
  corsOrigins: string[] | null;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  sseHeartbeatSeconds: number;
  /** How often `/lobby_api` pings each client; one that has not answered the previous ping is dropped. */
  lobbyPingSeconds: number;
  clientBufferLimitBytes: number;
  shutdownGraceSeconds: number;
  /** On SIGTERM: how long the listener keeps accepting (with /ready at 503) before it stops, so a load balancer notices. */
  drainDelaySeconds: number;
  /** The longest a request's headers and body may take to arrive (multipart uploads: see uploadIdleTimeoutSeconds). */
  requestTimeoutSeconds: number;
  /** The longest a multipart upload may go without sending a byte. */
  uploadIdleTimeoutSeconds: number;
  /** Connections from one address whose request (or WebSocket handshake) has not fully arrived; 0: no limit. */
  maxIncompleteConnectionsPerAddress: number;
  /** Messages one principal may post per minute; 0: no limit. */
  rateLimitPostsPerMinute: number;
  iceServers: IceServer[];
  /** With it, TURN entries get time-limited credentials (coturn's REST-API scheme). */
  turnSecret: string | null;
  turnTtlSeconds: number;
  streamUrlTtlSeconds: number;
}

export const DEFAULT_ADMIN_PASSWORD = "admin";

export class ConfigError extends Error {
  constructor(problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

function describeIssues(source: string, error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const name = issue.path.join(".") || "(root)";
    return `${source} ${name}: ${issue.message}`;
  });
}

/** `memory://` keeps the embedded database in memory; anything else is a directory. */
function inMemoryOrResolved(dataDir: string): string {
  return dataDir.startsWith("memory://") ? dataDir : path.resolve(dataDir);
}

function readOrmConfig(file: string, required: boolean): z.infer<typeof OrmConfigSchema> {
  if (!fs.existsSync(file)) {
    if (required) throw new ConfigError([`ORMCONFIG: ${file} does not exist`]);
    return OrmConfigSchema.parse({});
  }
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw new ConfigError([`${file}: not valid JSON (${(error as Error).message})`]);
  }
  const parsed = OrmConfigSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(describeIssues(path.basename(file), parsed.error));
  return parsed.data;
}

/**
 * Builds the configuration from ormconfig.json, overridden by environment variables.
 * Empty environment values count as unset, so `FOO= npm start` means the default.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  ormConfigFile = path.resolve(env.ORMCONFIG ?? "ormconfig.json"),
): Config {
  const orm = readOrmConfig(ormConfigFile, Boolean(env.ORMCONFIG));
  const cleanEnv = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = EnvSchema.safeParse(cleanEnv);
  if (!parsed.success) throw new ConfigError(describeIssues("environment variable", parsed.error));
  const e = parsed.data;

  const logging = e.DATABASE_LOGGING ?? orm.logging;
  const url = e.DATABASE_URL ?? orm.url;
  const dataDir = path.resolve(e.DATA_DIR);
  const database: DatabaseConfig = url
    ? { kind: "postgres", url, poolSize: e.DATABASE_POOL_SIZE ?? orm.poolSize, logging, connectTimeoutMS: orm.connectTimeoutMS }
    : {
        kind: "pglite",
        dataDir: inMemoryOrResolved(e.PGLITE_DATA_DIR ?? orm.pglite.dataDir),
        logging,
        connectTimeoutMS: orm.connectTimeoutMS,
      };

  const problems: string[] = [];
  if (e.PROCESSES > 1 && database.kind === "pglite")
    problems.push("PROCESSES > 1 needs DATABASE_URL: the embedded database serves one process");
  if (e.PROCESSES > 1 && !e.REDIS_URL)
    problems.push("PROCESSES > 1 needs REDIS_URL: processes share events through Redis");
  const iceServers = parseIceServers(e.ICE_SERVERS);
  if (typeof iceServers === "string") problems.push(iceServers);
  if (problems.length || typeof iceServers === "string") throw new ConfigError(problems);

  return {
    port: e.PORT,
    host: e.HOST,
    publicUrl: e.PUBLIC_URL?.replace(/\/+$/, "") ?? null,
    database,
    dataDir,
    uploadsDir: path.resolve(e.UPLOADS_DIR),
    redisUrl: e.REDIS_URL ?? null,
    redisPrefix: e.REDIS_PREFIX,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    busResyncSeconds: e.BUS_RESYNC_SECONDS,
    trustProxy: e.TRUST_PROXY,
    processes: e.PROCESSES,
    jwtSecret: e.JWT_SECRET ?? null,
    jwtTtlSeconds: e.JWT_TTL_SECONDS,
    bcryptRounds: e.BCRYPT_ROUNDS,
    basicAuthCacheSeconds: e.BASIC_AUTH_CACHE_SECONDS,
    admin: { username: e.ADMIN_USERNAME, password: e.ADMIN_PASSWORD },
    rateLimitAuthPerMinute: e.RATE_LIMIT_AUTH_PER_MINUTE,
    rateLimitAuthPerAccount: e.RATE_LIMIT_AUTH_PER_ACCOUNT,
    maxUploadBytes: e.MAX_UPLOAD_BYTES,
    maxBodyBytes: e.MAX_BODY_BYTES,
    corsOrigins: e.CORS_ORIGINS ?? null,
    logLevel: e.LOG_LEVEL,
    sseHeartbeatSeconds: e.SSE_HEARTBEAT_SECONDS,
    lobbyPingSeconds: e.LOBBY_PING_SECONDS,
    clientBufferLimitBytes: e.CLIENT_BUFFER_LIMIT_BYTES,
    shutdownGraceSeconds: e.SHUTDOWN_GRACE_SECONDS,
    drainDelaySeconds: e.DRAIN_DELAY_SECONDS,
    requestTimeoutSeconds: e.REQUEST_TIMEOUT_SECONDS,
    uploadIdleTimeoutSeconds: e.UPLOAD_IDLE_TIMEOUT_SECONDS,
    maxIncompleteConnectionsPerAddress: e.MAX_INCOMPLETE_CONNECTIONS_PER_ADDRESS,
    rateLimitPostsPerMinute: e.RATE_LIMIT_POSTS_PER_MINUTE,
    iceServers,
    turnSecret: e.TURN_SECRET ?? null,
    turnTtlSeconds: e.TURN_TTL_SECONDS,
    streamUrlTtlSeconds: e.STREAM_URL_TTL_SECONDS,
  };
}
