import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Request, RequestHandler } from "express";
import { pinoHttp } from "pino-http";
import { Histogram, type Registry } from "prom-client";
import type { Logger } from "../logger";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** The route label of a request nothing matched (404s): raw paths would make a series per URL. */
export const UNMATCHED_ROUTE = "unmatched";

/** Probes that orchestrators call every few seconds: their successes log at debug. */
const PROBES = new Set(["/health", "/ready", "/metrics"]);

/**
 * The route pattern that served the request (`/chat/rooms/:id/messages`), or the mount
 * path of the middleware that did (`/docs/*`), never the raw URL.
 */
export function routeOf(req: IncomingMessage): string {
  const { route, baseUrl } = req as Partial<Request>;
  if (typeof route?.path === "string") return `${baseUrl ?? ""}${route.path}`;
  return baseUrl ? `${baseUrl}/*` : UNMATCHED_ROUTE;
}

/** What the request line carries besides the request id and the user (bound by `Api` once authenticated). */
function summary(req: IncomingMessage, res: ServerResponse) {
  return {
    method: req.method,
    route: routeOf(req),
    status: res.statusCode,
    // Server-Sent Events URLs may carry ?access_token=: never log it.
    url: ((req as Partial<Request>).originalUrl ?? req.url)?.replace(/([?&]access_token=)[^&]*/g, "$1[redacted]"),
  };
}

/**
 * One line per request when it ends: method, route pattern, status, duration (`ms`), the
 * request id (`reqId`, also answered as X-Request-Id) and, once authenticated, `user`.
 * No headers: they are noise in every line and may carry credentials. Successful probes
 * log at debug, 5xx at error, the rest at info.
 */
export function requestLogger(log: Logger): RequestHandler {
  return pinoHttp({
    logger: log,
    genReqId: (req, res) => {
      const incoming = req.headers["x-request-id"];
      const id = typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : randomUUID();
      res.setHeader("X-Request-Id", id);
      return id;
    },
    // req.log and res.log: the logger with the request id only (Api adds the user to it).
    quietReqLogger: true,
    quietResLogger: true,
    customAttributeKeys: { responseTime: "ms" },
    customLogLevel: (req, res, error) =>
      error || res.statusCode >= 500 ? "error" : res.statusCode < 400 && PROBES.has(routeOf(req)) ? "debug" : "info",
    customSuccessObject: (req, res, value: { ms: number }) => ({ ...summary(req, res), ms: value.ms }),
    customSuccessMessage: (req, res) => (res.writableEnded ? "request completed" : "request aborted"),
    // Unexpected errors are logged with their stack by the error handler, under the same reqId.
    customErrorObject: (req, res, _error, value: { ms: number }) => ({ ...summary(req, res), ms: value.ms }),
    customErrorMessage: () => "request failed",
  }) as RequestHandler;
}

/** `http_request_duration_seconds` by method, route pattern and status. */
export function requestDuration(registry: Registry): RequestHandler {
  const histogram = new Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP requests until their response ended, by method, route pattern and status (event streams last as long as they stay open)",
    labelNames: ["method", "route", "status"],
    registers: [registry],
  });
  return (req, res, next) => {
    const end = histogram.startTimer();
    res.once("close", () => end({ method: req.method, route: routeOf(req), status: res.statusCode }));
    next();
  };
}
