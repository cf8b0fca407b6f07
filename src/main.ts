import cluster from "node:cluster";
import { setupWorker } from "@socket.io/sticky";
import { runPrimary } from "./cluster";
import { ConfigError, loadConfig, type Config } from "./config";
import { openDatabase } from "./db/data-source";
import { createLogger, type Logger } from "./logger";
import { busOptions, createBus } from "./realtime/bus";
import { schemaOf } from "./core/module";
import { MODULES } from "./modules";
import { resolveSecret } from "./core/secrets";
import { createServer } from "./server";

/** Composition root: config → database → bus → server.listen, and a graceful stop. */
async function run(config: Config, log: Logger, asWorker: boolean): Promise<void> {
  log.info({ database: config.database.kind, bus: config.redisUrl ? "redis" : "local" }, "starting");
  const database = await openDatabase(config.database, schemaOf(MODULES));
  const bus = await createBus(busOptions(config), log);
  const server = await createServer({ config, dataSource: database.dataSource, bus, log }, MODULES);
  if (asWorker) {
    // The primary owns the port and passes connections in.
    setupWorker(server.io);
    process.send?.({ type: "convene:ready" });
  } else {
    const address = await server.listen();
    log.info({ port: address.port, host: address.address }, "listening");
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    try {
      // Ctrl+C is someone at a terminal, not a load balancer to wait for: no drain delay.
      await server.close(signal === "SIGINT" ? { drainDelaySeconds: 0 } : {});
      await bus.close();
      await database.close();
      log.info("stopped");
      process.exit(0);
    } catch (error) {
      log.error({ err: error }, "shutdown failed");
      process.exit(1);
    }
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}

function main(): void {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  const start = config.processes > 1 && cluster.isPrimary ? runPrimary(config, log, () => resolveSecret("jwt-secret", config.jwtSecret, config.dataDir)) : run(config, log, cluster.isWorker);
  start.catch((error: unknown) => {
    log.fatal({ err: error }, "failed to start");
    process.exit(1);
  });
}

main();
