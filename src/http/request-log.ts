import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Request, RequestHandler } from "express";
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

declare module "node:http" {
  interface IncomingMessage {
    /** The request id: the client's valid X-Request-Id, or a new UUID. */
    id?: string;
    /** Who made the request, once authenticated (`logRequestUser`): on its log line. */
    loggedUser?: { user: string; principal: string };
  }
}

/** Puts the authenticated principal on the request's log line (called by `Api`). */
export function logRequestUser(req: IncomingMessage, user: string, principal: string): void {
  req.loggedUser = { user, principal };
}

/**
 * One line per request when it ends: method, route pattern, status, duration (`ms`), the
 * request id (`reqId`, also answered as X-Request-Id) and, once authenticated, `user`.
 * No headers: they are noise in every line and may carry credentials. Successful probes
 * log at debug, 5xx at error, the rest at info.
 *
 * Written here rather than with pino-http: pino-http makes two child loggers per request
 * and serialises the whole request into one of them even when the line is not written,
 * which was 27 % of the server's CPU under a `/health` load (docs/benchmarks.md). This
 * builds the line only when its level is enabled.
 */
export function requestLogger(log: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const incoming = req.headers["x-request-id"];
    const id = typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    req.id = id;
    res.setHeader("X-Request-Id", id);
    let logged = false;
    const done = (error?: Error) => {
      if (logged) return;
      logged = true;
      const failed = error !== undefined || res.statusCode >= 500;
      const level = failed ? "error" : res.statusCode < 400 && PROBES.has(routeOf(req)) ? "debug" : "info";
      if (!log.isLevelEnabled(level)) return;
      const line = { reqId: id, ...req.loggedUser, ...summary(req, res), ms: Math.round(performance.now() - started) };
      log[level](line, failed ? "request failed" : res.writableEnded ? "request completed" : "request aborted");
    };
    res.once("finish", () => done());
    res.once("close", () => done());
    res.once("error", done);
    next();
  };
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
