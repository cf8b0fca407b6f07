import "reflect-metadata";
import fs from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { createPgConfig } from "@electric-sql/pglite/node-postgres";
import { DataSource, type DataSourceOptions } from "typeorm";
import type { DatabaseConfig } from "../config";

export interface Database {
  dataSource: DataSource;
  /** Closes the DataSource and, for the embedded database, the PGlite instance. */
  close(): Promise<void>;
}

/** The modules' tables: TypeORM entities and migrations (see `schemaOf`). */
export interface Schema {
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  entities: Function[];
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  migrations: Function[];
}

/**
 * Opens the database the configuration names and applies pending migrations.
 * PGlite goes through its own node-postgres adapter with a pool of one connection, so
 * TypeORM's `postgres` driver and the same migrations serve both databases.
 */
export async function openDatabase(config: DatabaseConfig, schema: Schema): Promise<Database> {
  const common = { type: "postgres" as const, ...schema, migrationsRun: false, synchronize: false };
  let options: DataSourceOptions;
  let pglite: PGlite | null = null;
  if (config.kind === "postgres") {
    options = {
      ...common,
      url: config.url,
      poolSize: config.poolSize,
      logging: config.logging,
      connectTimeoutMS: config.connectTimeoutMS,
      // A database that stops answering must not hold requests (and pooled connections)
      // forever: statements are cancelled server-side after 15 s, and the client gives
      // up after 20 s if even the cancellation gets no answer. Both answer 503.
      extra: { idleTimeoutMillis: 30_000, statement_timeout: 15_000, query_timeout: 20_000 },
    };
  } else {
    if (!config.dataDir.startsWith("memory://")) fs.mkdirSync(config.dataDir, { recursive: true });
    pglite = await PGlite.create(config.dataDir);
    options = {
      ...common,
      poolSize: 1,
      logging: config.logging,
      connectTimeoutMS: config.connectTimeoutMS,
      extra: { ...createPgConfig(pglite), max: 1 },
    };
  }
  const dataSource = new DataSource(options);
  try {
    await dataSource.initialize();
    await migrate(dataSource, config.kind === "postgres");
  } catch (error) {
    if (dataSource.isInitialized) await dataSource.destroy();
    await pglite?.close();
    throw error;
  }
  return {
    dataSource,
    async close() {
      if (dataSource.isInitialized) await dataSource.destroy();
      if (pglite && !pglite.closed) await pglite.close();
    },
  };
}

/** An arbitrary constant: the advisory lock that serializes migrations across processes. */
const MIGRATION_LOCK = 7_262_001;

/**
 * Applies pending migrations. On Postgres, processes that start together take turns
 * under an advisory lock; the embedded database has one process and one connection.
 */
async function migrate(dataSource: DataSource, lock: boolean): Promise<void> {
  if (!lock) {
    await dataSource.runMigrations({ transaction: "each" });
    return;
  }
  const runner = dataSource.createQueryRunner();
  try {
    await runner.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    await dataSource.runMigrations({ transaction: "each" });
  } finally {
    await runner.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
    await runner.release();
  }
}
