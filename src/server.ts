import http from "node:http";
import net, { type AddressInfo, type Socket } from "node:net";
import type { Express } from "express";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { DataSource } from "typeorm";
import { createApp } from "./app";
import type { Config } from "./config";
import type { ConveneModule, Kernel, ModuleDefinition, Use } from "./core/module";
import { Authenticators } from "./http/auth-context";
import { answerClientError } from "./http/error-handler";
import { answerAsProblems, NODE_SERVER_OPTIONS, refuseUpgrade } from "./http/node-answers";
import { createFailedCredentialLimiter } from "./http/password-budget";
import { InFlight } from "./http/in-flight";
import { createCredentialRateLimiter, createRateLimitStores } from "./http/rate-limit";
import { SlowClientGuard } from "./http/slow-clients";
import type { Logger } from "./logger";
import type { Bus } from "./realtime/bus";
import { Connections } from "./realtime/connections";
import { createAsyncApiDocument } from "./realtime/asyncapi";
import { createSocketAdapter, createSocketServer, SocketDelivery, type AppServer } from "./realtime/socket-server";
import { MessageMetrics } from "./realtime/metrics";
import { redisOptions } from "./realtime/redis-client";
import { announceShutdown, shutdownFace } from "./realtime/shutdown";
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
  /** The started modules, in start order (what each plugged in: its routes, socket face, upgrades). */
  modules: readonly ConveneModule[];
  app: Express;
  io: AppServer;
  listen(port?: number, host?: string): Promise<AddressInfo>;
  /**
   * Drains: /ready answers 503 and responses carry `Connection: close` at once; the listener
   * keeps accepting for DRAIN_DELAY_SECONDS, then stops; real-time clients are told and
   * closed; in-flight requests finish (up to the grace period); then every socket closes.
   * `drainDelaySeconds` replaces DRAIN_DELAY_SECONDS (0 on Ctrl+C).
   */
  close(options?: { drainDelaySeconds?: number }): Promise<void>;
}

/**
 * One HTTP server with every door (REST, Socket.IO, SSE, the modules' own WebSocket
 * upgrades), serving the modules it is given, in their start order. It knows no module:
 * each plugs in through the ConveneModule interface. Takes its dependencies as arguments,
 * so tests start a whole server on a fresh database in one call.
 */
export async function createServer({ config, dataSource, bus, log }: ServerDeps, definitions: ModuleDefinition[]): Promise<ConveneServer> {
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });
  const messageMetrics = new MessageMetrics(metrics);
  const relay = new StreamRelay(bus, log, messageMetrics);
  await relay.start();
  const connections = new Connections(bus, log);
  await connections.start();
  const rateLimits = await createRateLimitStores(redisOptions(config), config.redisPrefix, log);
  const failedCredentials = await createFailedCredentialLimiter(
    { perAddressPerMinute: config.rateLimitAuthPerMinute, perAccount: config.rateLimitAuthPerAccount },
    rateLimits,
    log,
  );
  const eventStreams = new EventStreams({ heartbeatSeconds: config.sseHeartbeatSeconds, bufferLimitBytes: config.clientBufferLimitBytes, connections, metrics: messageMetrics });

  const sockets = new SocketDelivery(log);
  const inFlight = new InFlight();
  const modules: ConveneModule[] = [];
  const exported = new Map<ModuleDefinition, unknown>();
  const kernel: Kernel = {
    config,
    dataSource,
    bus,
    log,
    relay,
    connections,
    metrics,
    messageMetrics,
    rateLimits,
    eventStreams,
    sockets,
    failedCredentials,
    credentialLimiter: createCredentialRateLimiter(config.rateLimitAuthPerMinute, rateLimits.create("credentials")),
    isDraining: () => inFlight.isDraining(),
    userDeletedHooks: () => modules.flatMap((m) => (m.onUserDeleted ? [m.onUserDeleted] : [])),
  };
  const use: Use = <T>(definition: ModuleDefinition<T>): T => {
    if (!exported.has(definition)) throw new Error(`the ${definition.name} module must come before the modules that use it`);
    return exported.get(definition) as T;
  };
  for (const definition of definitions) {
    const module = await definition.create(kernel, use);
    modules.push(module);
    exported.set(definition, module.exports);
    for (const source of module.streams ?? []) relay.addSource(source);
  }
  for (const module of modules) await module.start?.();

  const faces = [shutdownFace, ...modules.flatMap((m) => (m.socket ? [m.socket] : []))];
  const upgrades = modules.flatMap((m) => m.upgrades ?? []);
  const app = createApp({
    config,
    log,
    authenticators: new Authenticators(modules.flatMap((m) => m.authenticators?.http ?? [])),
    failedCredentials,
    version: VERSION,
    metrics,
    routes: modules.flatMap((m) => (m.routes ? [m.routes.bind(m)] : [])),
    asyncapi: createAsyncApiDocument(faces, upgrades, VERSION),
  });

  const limits = { requestTimeoutMs: config.requestTimeoutSeconds * 1000, uploadIdleMs: config.uploadIdleTimeoutSeconds * 1000, maxIncompletePerAddress: config.maxIncompleteConnectionsPerAddress };
  const httpServer = http.createServer({ ...NODE_SERVER_OPTIONS, connectionsCheckingInterval: SlowClientGuard.checkEveryMs(limits) }, app);
  inFlight.attach(httpServer);
  // Node times the headers; SlowClientGuard the body, so multipart uploads get an idle limit instead.
  httpServer.headersTimeout = limits.requestTimeoutMs;
  httpServer.requestTimeout = 0;
  httpServer.keepAliveTimeout = 5_000;
  const io = createSocketServer({
    httpServer,
    authenticators: modules.flatMap((m) => m.authenticators?.socket ?? []),
    faces,
    relay,
    connections,
    log,
    corsOrigins: config.corsOrigins,
    bufferLimitBytes: config.clientBufferLimitBytes,
    metrics: messageMetrics,
    connectTimeoutMs: limits.requestTimeoutMs,
  });
  const slowClients = new SlowClientGuard(limits, log, metrics);
  slowClients.attach(httpServer);
  io.use((socket, next) => {
    // After the authenticating middleware: only an accepted handshake completes a connection.
    slowClients.handshakeDone(socket.conn.request?.socket as Socket | undefined);
    next();
  });
  const redis = redisOptions(config);
  const adapter = redis ? await createSocketAdapter(io, redis, config.redisPrefix, log) : null;
  sockets.bind(io, adapter);
  new Gauge({ name: "convene_socketio_clients", help: "Connected Socket.IO clients", registers: [metrics], collect() { this.set(io.engine.clientsCount); } });
  new Gauge({ name: "convene_sse_streams", help: "Open Server-Sent Events streams", registers: [metrics], collect() { this.set(eventStreams.size); } });
  httpServer.on("clientError", answerClientError);
  httpServer.on("upgrade", (req, socket, head: Buffer) => {
    const path = req.url?.split("?")[0] ?? "";
    if (path.startsWith("/socket.io/")) return;
    const upgrade = upgrades.find((u) => u.path === path);
    // Upgrades that no door owns are refused rather than left hanging.
    if (upgrade) upgrade.handle(req, socket, head);
    else refuseUpgrade(socket, 404, `No WebSocket endpoint at ${path}.`);
  });
  answerAsProblems(httpServer);

  let closing: Promise<void> | null = null;
  return {
    httpServer,
    modules,
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
    close({ drainDelaySeconds = config.drainDelaySeconds } = {}) {
      closing ??= (async () => {
        inFlight.startDraining();
        log.info({ delaySeconds: drainDelaySeconds, inFlight: inFlight.size }, "draining");
        await new Promise((resolve) => setTimeout(resolve, drainDelaySeconds * 1000));
        // Only the listener: a kept-alive connection whose next request is on its way is still answered (with Connection: close).
        net.Server.prototype.close.call(httpServer);
        slowClients.close();
        announceShutdown(io, eventStreams);
        for (const module of [...modules].reverse()) await module.stop?.().catch((error: unknown) => log.error({ err: error }, "a module failed to stop"));
        // Every Socket.IO connection closes (a client reconnects after a transport close); io.close() would close idle HTTP connections too.
        io.engine.close();
        let grace: NodeJS.Timeout | undefined;
        await Promise.race([
          inFlight.drained(),
          new Promise<void>((resolve) => (grace = setTimeout(resolve, config.shutdownGraceSeconds * 1000))),
        ]);
        clearTimeout(grace);
        httpServer.close();
        httpServer.closeAllConnections();
        await rateLimits.close();
        await adapter?.close();
      })();
      return closing;
    },
  };
}
