import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Express } from "express";
import type { DataSource } from "typeorm";
import { createApp } from "./app";
import { DEFAULT_ADMIN_PASSWORD, type Config } from "./config";
import { createCredentialRateLimiter } from "./http/rate-limit";
import type { Logger } from "./logger";
import { registerAccountsRoutes } from "./modules/accounts/accounts.routes";
import { AccountsService } from "./modules/accounts/accounts.service";
import { resolveJwtSecret } from "./modules/accounts/jwt-secret";
import { SessionService } from "./modules/accounts/sessions.service";
import { registerPlatformRoutes } from "./modules/platform/platform.routes";
import type { Bus } from "./realtime/bus";
import { version as VERSION } from "../package.json";

export interface ServerDeps {
  config: Config;
  dataSource: DataSource;
  bus: Bus;
  log: Logger;
}

export interface ConveneServer {
  httpServer: http.Server;
  app: Express;
  listen(port?: number, host?: string): Promise<AddressInfo>;
  /** Stops accepting, lets in-flight requests finish (up to the grace period), closes sockets. */
  close(): Promise<void>;
}


/**
 * Wires the modules onto one HTTP server. Takes its dependencies as arguments, so tests
 * start a whole server on a fresh database in one call; main.ts is the only caller that
 * builds those dependencies from the environment.
 */
export async function createServer({ config, dataSource, bus, log }: ServerDeps): Promise<ConveneServer> {
  const sessions = new SessionService({
    dataSource,
    bus,
    jwtSecret: resolveJwtSecret(config.jwtSecret, config.dataDir),
    jwtTtlSeconds: config.jwtTtlSeconds,
    bcryptRounds: config.bcryptRounds,
    basicAuthCacheSeconds: config.basicAuthCacheSeconds,
  });
  await sessions.start();
  const accounts = new AccountsService(dataSource, sessions, log);
  await accounts.ensureAdmin(config.admin, DEFAULT_ADMIN_PASSWORD);

  const credentialLimiter = createCredentialRateLimiter(config.rateLimitAuthPerMinute);
  const app = createApp({
    config,
    log,
    authenticator: sessions,
    version: VERSION,
    modules: [
      (api) => registerPlatformRoutes(api, dataSource),
      (api) => registerAccountsRoutes(api, accounts, credentialLimiter),
    ],
  });

  const httpServer = http.createServer(app);
  // Slow or stalled clients must not hold a socket forever.
  httpServer.headersTimeout = 30_000;
  httpServer.requestTimeout = 0; // long uploads and streams; idle sockets time out below
  httpServer.keepAliveTimeout = 5_000;

  let closing: Promise<void> | null = null;
  return {
    httpServer,
    app,
    listen(port = config.port, host = config.host) {
      return new Promise((resolve, reject) => {
        httpServer.once("error", reject);
        httpServer.listen(port, host, () => {
          httpServer.off("error", reject);
          resolve(httpServer.address() as AddressInfo);
        });
      });
    },
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections();
        const grace = setTimeout(() => httpServer.closeAllConnections(), config.shutdownGraceSeconds * 1000);
        await stopped;
        clearTimeout(grace);
      })();
      return closing;
    },
  };
}
