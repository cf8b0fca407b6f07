import type { Registry } from "prom-client";
import type { DataSource } from "typeorm";
import type { Api } from "../../http/api";
import type { Bus } from "../../realtime/bus";
import { DomainError } from "../../core/errors";
import { z } from "../../http/zod";

const tag = "Platform";
const StatusSchema = z.object({ status: z.literal("ok") }).openapi("Status");
const ReadinessSchema = z
  .union([
    z.object({ status: z.literal("ok") }),
    z.object({
      status: z.literal("degraded").describe("Serving, but Redis is unreachable: other processes get this one's events once it is back"),
      bus: z.literal("down"),
    }),
  ])
  .openapi("Readiness");
const READY_TIMEOUT_MS = 2000;

async function databaseAnswers(dataSource: DataSource): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS)));
  const probe = dataSource.query("SELECT 1").then(() => true, () => false);
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function registerPlatformRoutes(api: Api, dataSource: DataSource, metrics: Registry, bus: Pick<Bus, "up">, isDraining: () => boolean): void {
  api.tag(tag, "Liveness, readiness and Prometheus metrics, for operators and orchestrators.");
  api.route(
    {
      method: "get", path: "/health", operationId: "getHealth", summary: "Liveness: the process answers", tag, auth: "none",
      responses: { 200: { description: "Alive", schema: StatusSchema } },
    },
    ({ res }) => {
      res.json({ status: "ok" });
    },
  );

  api.route(
    {
      method: "get", path: "/ready", operationId: "getReadiness", summary: "Readiness: the database answers and the server is not shutting down (a Redis outage only degrades)", tag, auth: "none",
      responses: {
        200: { description: "Ready; `degraded` while Redis is unreachable", schema: ReadinessSchema },
        503: "The database is unreachable, or the server is shutting down (from the signal on)",
      },
    },
    async ({ res }) => {
      if (isDraining()) throw new DomainError(503, "The server is shutting down.");
      if (!(await databaseAnswers(dataSource))) throw new DomainError(503, "The database is unreachable.");
      res.json(bus.up ? { status: "ok" } : { status: "degraded", bus: "down" });
    },
  );

  api.route(
    {
      method: "get", path: "/metrics", operationId: "getMetrics", summary: "Prometheus metrics of this process", tag, auth: "none",
      responses: { 200: { description: "Prometheus text exposition format", schema: z.string(), contentType: "text/plain" } },
    },
    async ({ res }) => {
      res.type(metrics.contentType).send(await metrics.metrics());
    },
  );
}
