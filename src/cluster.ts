import cluster, { type Worker } from "node:cluster";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { setupMaster } from "@socket.io/sticky";
import type { Config } from "./config";
import { rawProblemResponse } from "./http/error-handler";
import { SlowClientGuard } from "./http/slow-clients";
import type { Logger } from "./logger";

/**
 * PROCESSES=N: the primary owns the port and hands each connection to a worker. Socket.IO
 * needs its long-polling requests to reach the worker that holds the session, so the
 * primary routes by session id (@socket.io/sticky); everything else goes to the worker
 * with the fewest clients. Workers share state through Postgres and the Redis bus.
 */
export async function runPrimary(config: Config, log: Logger, prepare: () => void): Promise<void> {
  // Shared files the workers read (the generated JWT secret) are made once, here.
  prepare();
  // Buffers cross the IPC channel as Buffers, not as JSON.
  cluster.setupPrimary({ serialization: "advanced" });

  const httpServer = http.createServer({ connectionsCheckingInterval: SlowClientGuard.checkEveryMs({ requestTimeoutMs: config.requestTimeoutSeconds * 1000, uploadIdleMs: config.uploadIdleTimeoutSeconds * 1000 }) });
  setupMaster(httpServer, { loadBalancingMethod: "least-connection" });
  stopReadingHandedOverConnections(httpServer);
  timeFirstChunks(httpServer, config.requestTimeoutSeconds * 1000);

  let stopping = false;
  const readyWorkers = new Set<number>();
  const fork = (): Worker => cluster.fork();
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) return;
    if (readyWorkers.size < config.processes && !readyWorkers.has(worker.id)) {
      // A first worker failed while starting: the others would fail the same way.
      log.fatal({ worker: worker.process.pid, code, signal }, "a worker failed to start; stopping");
      for (const other of Object.values(cluster.workers ?? {})) other?.process.kill("SIGTERM");
      process.exit(1);
    }
    log.error({ worker: worker.process.pid, code, signal }, "worker died; starting another");
    setTimeout(fork, 1000);
  });

  const ready = new Promise<void>((resolve) => {
    cluster.on("message", (worker, message: { type?: string }) => {
      if (message?.type !== "convene:ready") return;
      readyWorkers.add(worker.id);
      if (readyWorkers.size === config.processes) resolve();
    });
  });
  for (let i = 0; i < config.processes; i++) fork();
  await ready;
  await new Promise<void>((resolve) => httpServer.listen(config.port, config.host, resolve));
  const address = httpServer.address() as AddressInfo;
  log.info({ port: address.port, host: address.address, workers: config.processes }, "listening");

  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    // Ctrl+C (SIGINT, which the workers get too) stops without the drain delay.
    const delaySeconds = signal === "SIGINT" ? 0 : config.drainDelaySeconds;
    log.info({ signal, delaySeconds }, "shutting down workers");
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    const exited = workers.map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once("exit", () => resolve()))));
    // The workers drain (/ready answers 503) while the primary keeps accepting and handing
    // connections over for the drain delay, so a load balancer notices before the port closes.
    for (const worker of workers) worker.process.kill(signal);
    const listening = setTimeout(() => httpServer.close(), delaySeconds * 1000);
    const deadline = setTimeout(() => workers.forEach((w) => w.process.kill("SIGKILL")), (delaySeconds + config.shutdownGraceSeconds + 5) * 1000);
    await Promise.all(exited);
    clearTimeout(listening);
    clearTimeout(deadline);
    log.info("stopped");
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}

/**
 * @socket.io/sticky reads a connection's first request in the primary, then sends the
 * connection's handle to a worker. Until the worker acknowledges it, the primary's copy
 * of the handle keeps reading, and Node drops what it reads: a WebSocket client's first
 * frames (its Socket.IO CONNECT) could vanish, leaving the client hanging. Stop reading
 * as soon as the first chunk shows the connection is to be handed over (sticky's own
 * rule: no request body to forward).
 */
function stopReadingHandedOverConnections(httpServer: http.Server): void {
  httpServer.on("connection", (socket: Socket) => {
    socket.prependOnceListener("data", (chunk: Buffer) => {
      const end = chunk.indexOf("\r\n\r\n");
      const head = chunk.subarray(0, end === -1 ? chunk.length : end).toString("latin1").toLowerCase();
      if (head.includes("content-length:") || head.includes("transfer-encoding:")) return;
      (socket as unknown as { _handle?: { readStop(): number } })._handle?.readStop();
    });
  });
}

/**
 * A connection must send its first chunk within REQUEST_TIMEOUT_SECONDS (the primary's
 * headersTimeout); after that it is the worker's to time (SlowClientGuard). The primary's
 * own HTTP parser never reads a connection sticky takes over, so it would take every one
 * whose body sticky forwards (an upload) for a request whose headers never came, and cut
 * it at the primary's headersTimeout.
 */
function timeFirstChunks(httpServer: http.Server, limitMs: number): void {
  const started = new WeakSet<Duplex>();
  httpServer.headersTimeout = limitMs;
  httpServer.requestTimeout = 0;
  httpServer.on("connection", (socket: Socket) => socket.prependOnceListener("data", () => started.add(socket)));
  httpServer.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT" && started.has(socket)) return;
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT" && socket.writable) socket.end(rawProblemResponse(408, "The request took too long to arrive."), () => socket.destroy());
    else socket.destroy();
  });
}
