import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Express } from "express";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { Server as SocketIoServer } from "socket.io";
import type { DataSource } from "typeorm";
import { createApp } from "./app";
import { DEFAULT_ADMIN_PASSWORD, type Config } from "./config";
import { answerClientError, rawProblemResponse } from "./http/error-handler";
import { createCredentialRateLimiter, createFailedCredentialLimiter, createRateLimitStores } from "./http/rate-limit";
import type { Logger } from "./logger";
import { registerAccountsRoutes } from "./modules/accounts/accounts.routes";
import { AccountsService } from "./modules/accounts/accounts.service";
import { resolveJwtSecret } from "./modules/accounts/jwt-secret";
import { ACCOUNTS_TOPIC, SessionService, type AccountsEvent } from "./modules/accounts/sessions.service";
import { registerChatRoutes } from "./modules/chat/chat.routes";
import { deleteDirectMessages, ChatService } from "./modules/chat/chat.service";
import { registerRoomsRoutes } from "./modules/rooms/rooms.routes";
import { leaveAllRooms, RoomsService } from "./modules/rooms/rooms.service";
import { chatSocketModule } from "./modules/chat/chat.socket";
import { MessagingService } from "./modules/messaging/messaging.service";
import { registerPlatformRoutes } from "./modules/platform/platform.routes";
import type { Bus } from "./realtime/bus";
import { createSocketServer } from "./realtime/socket-server";
import { EventStreams } from "./realtime/sse";
import { StreamRelay } from "./realtime/stream-relay";
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
  io: SocketIoServer;
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
  const accounts = new AccountsService(dataSource, sessions, log, [deleteDirectMessages, leaveAllRooms]);
  await accounts.ensureAdmin(config.admin, DEFAULT_ADMIN_PASSWORD);
  const messaging = new MessagingService(dataSource, bus);
  const relay = new StreamRelay(bus, messaging, log);
  await relay.start();
  const chat = new ChatService(dataSource, messaging, accounts);
  const rooms = new RoomsService(dataSource, accounts);
  const eventStreams = new EventStreams({
    heartbeatSeconds: config.sseHeartbeatSeconds,
    bufferLimitBytes: config.clientBufferLimitBytes,
    revokedSince: (auth, since) => sessions.revokedSince(auth, since),
  });
  await bus.subscribe(ACCOUNTS_TOPIC, (event) => eventStreams.endFor(event as AccountsEvent));

  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });
  const rateLimitStores = await createRateLimitStores(config.redisUrl, config.redisPrefix, log);
  const credentialLimiter = createCredentialRateLimiter(config.rateLimitAuthPerMinute, rateLimitStores.create("credentials"));
  const failedCredentials = await createFailedCredentialLimiter(config.rateLimitAuthPerMinute, rateLimitStores.create("failed-credentials"), log);
  const app = createApp({
    config,
    log,
    authenticator: sessions,
    failedCredentials,
    version: VERSION,
    modules: [
      (api) => registerPlatformRoutes(api, dataSource, metrics),
      (api) => registerAccountsRoutes(api, accounts, credentialLimiter),
      (api) => registerChatRoutes(api, chat, relay, eventStreams, config.publicUrl),
      (api) => registerRoomsRoutes(api, rooms),
    ],
  });

  const httpServer = http.createServer(app);
  // Counted here rather than read from the server's "close" event: a cluster worker
  // receives its connections from the primary and never listens itself.
  const inFlight = countRequests(httpServer);
  // Slow or stalled clients must not hold a socket forever.
  httpServer.headersTimeout = 30_000;
  httpServer.requestTimeout = 0; // event streams and long uploads legitimately take long
  httpServer.keepAliveTimeout = 5_000;
  const io = await createSocketServer({
    httpServer,
    sessions,
    relay,
    bus,
    log,
    corsOrigins: config.corsOrigins,
    bufferLimitBytes: config.clientBufferLimitBytes,
    modules: [chatSocketModule(chat, log)],
  });
  new Gauge({ name: "convene_socketio_clients", help: "Connected Socket.IO clients", registers: [metrics], collect() { this.set(io.engine.clientsCount); } });
  new Gauge({ name: "convene_sse_streams", help: "Open Server-Sent Events streams", registers: [metrics], collect() { this.set(eventStreams.size); } });
  httpServer.on("clientError", answerClientError);
  // Upgrades that no door owns are refused rather than left hanging.
  httpServer.on("upgrade", (req, socket) => {
    if (!req.url?.startsWith("/socket.io/")) socket.end(rawProblemResponse(404, `No WebSocket endpoint at ${req.url?.split("?")[0]}.`));
  });

  let closing: Promise<void> | null = null;
  return {
    httpServer,
    app,
    io,
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
        eventStreams.closeAll();
        // Disconnects every socket and stops the HTTP server accepting.
        void io.close();
        httpServer.closeIdleConnections();
        let grace: NodeJS.Timeout | undefined;
        await Promise.race([
          inFlight.drained(),
          new Promise<void>((resolve) => (grace = setTimeout(resolve, config.shutdownGraceSeconds * 1000))),
        ]);
        clearTimeout(grace);
        httpServer.closeAllConnections();
        await rateLimitStores.close();
      })();
      return closing;
    },
  };
}

/** Requests that have not finished yet; `drained` resolves when there are none. */
function countRequests(server: http.Server) {
  let open = 0;
  const waiters: Array<() => void> = [];
  server.on("request", (_req, res: http.ServerResponse) => {
    open += 1;
    res.once("close", () => {
      open -= 1;
      if (open === 0) for (const resolve of waiters.splice(0)) resolve();
    });
  });
  return {
    drained: () => (open === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
  };
}
