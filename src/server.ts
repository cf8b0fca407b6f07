import http from "node:http";
import type { AddressInfo } from "node:net";
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
import { createCredentialRateLimiter, createRateLimitStores } from "./http/rate-limit";
import type { Logger } from "./logger";
import type { Bus } from "./realtime/bus";
import { Connections } from "./realtime/connections";
import { createAsyncApiDocument } from "./realtime/asyncapi";
import { createSocketAdapter, createSocketServer, SocketDelivery, type AppServer } from "./realtime/socket-server";
import { MessageMetrics } from "./realtime/metrics";
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
  /** Stops accepting, lets in-flight requests finish (up to the grace period), closes sockets. */
  close(): Promise<void>;
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
  const rateLimits = await createRateLimitStores(config.redisUrl, config.redisPrefix, log);
  const failedCredentials = await createFailedCredentialLimiter(
    { perAddressPerMinute: config.rateLimitAuthPerMinute, perAccount: config.rateLimitAuthPerAccount },
    rateLimits,
    log,
  );
  const eventStreams = new EventStreams({ heartbeatSeconds: config.sseHeartbeatSeconds, bufferLimitBytes: config.clientBufferLimitBytes, connections, metrics: messageMetrics });

  const sockets = new SocketDelivery();
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

  const faces = modules.flatMap((m) => (m.socket ? [m.socket] : []));
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

  const httpServer = http.createServer(NODE_SERVER_OPTIONS, app);
  // Counted here rather than read from the server's "close" event: a cluster worker
  // receives its connections from the primary and never listens itself.
  const inFlight = countRequests(httpServer);
  // Slow or stalled clients must not hold a socket forever.
  httpServer.headersTimeout = 30_000;
  httpServer.requestTimeout = 0; // event streams and long uploads legitimately take long
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
  });
  const adapter = config.redisUrl ? await createSocketAdapter(io, config.redisUrl, config.redisPrefix, log) : null;
  sockets.bind(io);
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
    close() {
      closing ??= (async () => {
        eventStreams.closeAll();
        for (const module of [...modules].reverse()) await module.stop?.().catch((error: unknown) => log.error({ err: error }, "a module failed to stop"));
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
        await rateLimits.close();
        await adapter?.close();
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
