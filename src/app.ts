import cors from "cors";
import express, { type Express, type RequestHandler } from "express";
import helmet from "helmet";
import type { Registry } from "prom-client";
import swaggerUi from "swagger-ui-express";
import type { Config } from "./config";
import { Api } from "./http/api";
import { createErrorHandler, notFoundHandler } from "./http/error-handler";
import { createRegistry, generateDocument } from "./http/openapi";
import { requestDuration, requestLogger } from "./http/request-log";
import { absoluteUrl } from "./http/urls";
import { asyncApiFor } from "./realtime/asyncapi";
import type { Logger } from "./logger";
import type { Authenticators } from "./http/auth-context";
import type { FailedCredentialLimiter } from "./http/password-budget";

export interface AppOptions {
  config: Config;
  log: Logger;
  authenticators: Authenticators;
  /** The budget of wrong passwords (login, HTTP Basic, current_password). */
  failedCredentials: FailedCredentialLimiter;
  /** Each module's routes, registered on the shared Api in start order. */
  routes: Array<(api: Api) => void>;
  /** The AsyncAPI document of the Socket.IO events and WebSocket doors (`createAsyncApiDocument`). */
  asyncapi: Record<string, unknown>;
  version: string;
  /** `/metrics`' registry: the HTTP duration histogram goes there. */
  metrics: Registry;
}

/** The Express app: cross-cutting middleware, the modules' routes, OpenAPI and AsyncAPI, one error handler. */
export function createApp({ config, log, authenticators, failedCredentials, routes, asyncapi, version, metrics }: AppOptions): Express {
  const app = express();
  app.disable("x-powered-by");
  // Every API answer is Cache-Control: no-store, so no client can revalidate it: hashing
  // each JSON body for an ETag (Express' default) was CPU spent for nothing. Video
  // streams set their own strong ETag.
  app.set("etag", false);
  app.set("trust proxy", config.trustProxy);

  app.use(requestLogger(log), requestDuration(metrics));
  // No upgrade-insecure-requests: /docs must load over plain HTTP too (behind no TLS proxy).
  app.use(helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } }));
  app.use(cors({ origin: config.corsOrigins ?? true, exposedHeaders: ["Location", "Retry-After", "X-Request-Id", "Content-Range", "Accept-Ranges", "ETag"] }));
  app.use(express.json({ limit: config.maxBodyBytes, strict: false }));

  const registry = createRegistry();
  const api = new Api(registry, authenticators, failedCredentials);
  for (const register of routes) register(api);
  app.use(api.router);

  const document = generateDocument(registry, { version, tags: api.tags(), publicUrl: config.publicUrl });
  app.get("/openapi.json", (_req, res) => {
    res.json(document);
  });
  const docs: RequestHandler[] = swaggerUi.serveFiles(document);
  app.use("/docs", docs, swaggerUi.setup(document, { customSiteTitle: "Convene API" }));
  app.get("/asyncapi.json", (req, res) => {
    res.json(asyncApiFor(asyncapi, absoluteUrl(req, config.publicUrl, "")));
  });

  app.use(notFoundHandler);
  app.use(createErrorHandler(log));
  return app;
}
