import type { OpenAPIRegistry, ResponseConfig } from "@asteasolutions/zod-to-openapi";
import { Router, type Request, type RequestHandler, type Response } from "express";
import type { ZodObject, ZodType } from "zod";
import type { Principal } from "../core/principal";
import type { Authenticators, PresentedPassword } from "./auth-context";
import { DomainError, type FieldProblem } from "../core/errors";
import type { ProblemPresenter } from "./error-handler";
import { NO_FAILED_CREDENTIAL_LIMIT, type FailedCredentialLimiter } from "./password-budget";
import { HEADERS_TOO_LARGE_REF } from "./openapi";
import { ProblemSchema } from "./schemas";
import { z } from "./zod";
import { logRequestUser } from "./request-log";

type Method = "get" | "post" | "put" | "patch" | "delete";
type AuthMode = "none" | "required";

/** A response: a schema for JSON bodies, a string for a problem+json answer, or a full config. */
export type ResponseSpec = { description: string; schema?: ZodType; contentType?: string; headers?: Record<string, string> } | string;

export interface EndpointSpec<P extends ZodObject, Q extends ZodObject, B extends ZodType, A extends AuthMode> {
  method: Method;
  /** Express-style path: `/users/:username`. */
  path: string;
  /**
   * The operation's name in generated clients: camelCase, unique across the server, a verb
   * and what it acts on (`listRooms`, `postChannelMessage`). Renaming one breaks clients.
   */
  operationId: string;
  summary: string;
  description?: string;
  /** The one group the route is listed under (declared with `Api.tag`); one, so /docs shows it once. */
  tag: string;
  auth: A;
  /** SSE routes take the token as `?access_token=` too; they must answer `text/event-stream` (see `eventStreamResponse`). */
  queryToken?: boolean;
  params?: P;
  query?: Q;
  body?: B;
  /** Documents a body the handler reads itself (a multipart upload); `body` is for JSON. */
  rawBody?: { contentType: string; schema: ZodType };
  responses: Record<number, ResponseSpec>;
  /** Middleware that runs before authentication (rate limiters). */
  before?: RequestHandler[];
  /**
   * A password the route checks itself (login, `current_password`), so it counts in the
   * same budget as HTTP Basic: the body field holding it, and the path parameter or body
   * field naming the account it is checked for.
   */
  password?: { field: string; account: { param: string } | { field: string } };
  /** How this route presents its failures, when not as problem+json (the lobby's `$type` bodies). */
  presentError?: ProblemPresenter;
}

export interface HandlerInput<P extends ZodObject, Q extends ZodObject, B extends ZodType, A extends AuthMode> {
  params: z.output<P>;
  query: z.output<Q>;
  body: z.output<B>;
  auth: A extends "required" ? Principal : null;
  req: Request;
  res: Response;
}

export type Handler<P extends ZodObject, Q extends ZodObject, B extends ZodType, A extends AuthMode> = (
  input: HandlerInput<P, Q, B, A>,
) => Promise<void> | void;

function fieldProblems(location: string, error: z.ZodError): FieldProblem[] {
  return error.issues.map((issue) => ({
    field: [location, ...issue.path.map(String)].join("."),
    message: issue.message,
  }));
}

function hasBody(req: Request): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

const OPERATION_ID = /^[a-z][a-zA-Z0-9]*$/;
const EVENT_STREAM = "text/event-stream";

/**
 * A Server-Sent Events answer: `text/event-stream` whose body is a string of events, its
 * format described (OpenAPI 3.1 has no schema for a stream's items) and shown by example.
 */
export function eventStreamResponse(description: string, format: string, example: string): ResponseSpec {
  return { description, contentType: EVENT_STREAM, schema: z.string().openapi({ description: format, example }) };
}

/** Express `:name` → OpenAPI `{name}`. */
const toOpenApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

/**
 * A module's REST face: every route is declared once, with its zod schemas, and is both
 * mounted on the Express router and registered in the OpenAPI document. Handlers get
 * validated input only, so each reads parse → call a service → present.
 */
export class Api {
  readonly router = Router();
  private readonly operationIds = new Set<string>();
  /** `get /users/{}`: a route's method and path with its parameters unnamed. */
  private readonly operations = new Set<string>();
  private readonly declaredTags = new Map<string, string>();
  private readonly usedTags = new Set<string>();

  constructor(
    private readonly registry: OpenAPIRegistry,
    private readonly authenticators: Authenticators,
    private readonly failedCredentials: FailedCredentialLimiter = NO_FAILED_CREDENTIAL_LIMIT,
  ) {}

  /** Declares a group of routes for the document's top-level `tags`, with what it is for. */
  tag(name: string, description: string): void {
    if (this.declaredTags.has(name)) throw new Error(`OpenAPI tag "${name}" is declared twice`);
    this.declaredTags.set(name, description);
  }

  /** The document's top-level `tags`, in declaration order; every tag a route uses must be declared. */
  tags(): Array<{ name: string; description: string }> {
    const undeclared = [...this.usedTags].filter((name) => !this.declaredTags.has(name));
    if (undeclared.length > 0) throw new Error(`OpenAPI tags used by routes but not declared with api.tag(): ${undeclared.join(", ")}`);
    return [...this.declaredTags].map(([name, description]) => ({ name, description }));
  }

  route<P extends ZodObject, Q extends ZodObject, B extends ZodType, A extends AuthMode>(
    spec: EndpointSpec<P, Q, B, A>,
    handler: Handler<P, Q, B, A>,
  ): void {
    this.register(spec);
    const run: RequestHandler = async (req, res) => {
      // Answers are per caller and change with every write: no cache may keep them.
      res.setHeader("Cache-Control", "no-store");
      // A password presented for checking is an attempt until it proves right. One verified
      // lately is no guess, but is refused too while the client is over its limit: a
      // guess that happens to hit the cache must not stand out.
      const password = this.presentsPassword(spec, req);
      const who = password && { ip: req.ip, account: password.account };
      if (who && password.verified) await this.failedCredentials.check(who);
      const attempt = who && !password.verified ? await this.failedCredentials.attempt(who) : null;
      try {
        await this.handle(spec, handler, req, res);
      } catch (error) {
        if (!(error instanceof DomainError && error.credentialFailure)) await attempt?.forgive();
        if (spec.presentError) res.locals.presentError = spec.presentError;
        throw error;
      }
      await attempt?.succeeded();
    };
    this.router[spec.method](spec.path, ...(spec.before ?? []), run);
  }

  private async handle<P extends ZodObject, Q extends ZodObject, B extends ZodType, A extends AuthMode>(
    spec: EndpointSpec<P, Q, B, A>,
    handler: Handler<P, Q, B, A>,
    req: Request,
    res: Response,
  ): Promise<void> {
    const auth = spec.auth === "required" ? await this.authenticate(req, spec.queryToken ?? false) : null;
    const params = this.parse(spec.params, req.params, "path");
    const query = this.parse(spec.query, req.query, "query");
    let body: unknown;
    if (spec.body) {
      if (hasBody(req) && !req.is("application/json"))
        throw new DomainError(415, "The request body must be application/json.");
      // No body at all reads as {} so the schema names the missing fields; a JSON null stays null.
      body = this.parse(spec.body, hasBody(req) ? req.body : {}, "body");
    }
    await handler({ params, query, body, auth, req, res } as HandlerInput<P, Q, B, A>);
  }

  private async authenticate(req: Request, queryToken: boolean): Promise<Principal> {
    const accessToken = queryToken && typeof req.query.access_token === "string" ? req.query.access_token : undefined;
    const principal = await this.authenticators.authenticate({ authorization: req.headers.authorization, accessToken, headers: req.headers, body: req.body });
    logRequestUser(req, principal.name, principal.kind);
    return principal;
  }

  /** Whether the request presents a password, and for which account: the route's password field, or HTTP Basic. */
  private presentsPassword(spec: EndpointSpec<ZodObject, ZodObject, ZodType, AuthMode>, req: Request): PresentedPassword | null {
    const body = typeof req.body === "object" && req.body !== null ? (req.body as Record<string, unknown>) : {};
    if (spec.password && spec.password.field in body) {
      const named = "param" in spec.password.account ? req.params[spec.password.account.param] : body[spec.password.account.field];
      return { account: typeof named === "string" ? named : "", verified: false };
    }
    if (spec.auth !== "required") return null;
    return this.authenticators.presentsPassword({ authorization: req.headers.authorization, headers: req.headers });
  }

  private parse(schema: ZodType | undefined, value: unknown, location: "path" | "query" | "body"): unknown {
    if (!schema) return {};
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    // A malformed id names nothing: a path that fails validation is simply not found.
    if (location === "path") throw new DomainError(404, "No resource has that identifier.", { errors: fieldProblems(location, result.error) });
    throw new DomainError(400, `The request ${location} is invalid.`, { errors: fieldProblems(location, result.error) });
  }

  private register(spec: EndpointSpec<ZodObject, ZodObject, ZodType, AuthMode>): void {
    // Mistakes in a route's description fail at start-up (and so in every test), not in a client generator.
    if (!OPERATION_ID.test(spec.operationId)) throw new Error(`operationId "${spec.operationId}" (${spec.method} ${spec.path}) is not camelCase`);
    if (this.operationIds.has(spec.operationId)) throw new Error(`operationId "${spec.operationId}" (${spec.method} ${spec.path}) is used twice`);
    this.operationIds.add(spec.operationId);
    // The same route under other parameter names would be listed twice and only one would run.
    const operation = `${spec.method} ${spec.path.replace(/:[A-Za-z0-9_]+/g, ":")}`;
    if (this.operations.has(operation)) throw new Error(`${spec.method} ${spec.path} is declared twice`);
    this.operations.add(operation);
    this.usedTags.add(spec.tag);
    const streams = Object.values(spec.responses).some((response) => typeof response !== "string" && response.contentType === EVENT_STREAM);
    if (spec.queryToken && !streams) throw new Error(`${spec.method} ${spec.path} takes ?access_token= but documents no ${EVENT_STREAM} answer`);
    const responses: Record<string, ResponseConfig | { $ref: string }> = {};
    for (const [status, response] of Object.entries(spec.responses)) {
      if (typeof response === "string") {
        responses[status] = { description: response, content: { "application/problem+json": { schema: ProblemSchema } } };
      } else {
        responses[status] = {
          description: response.description,
          ...(response.headers ? { headers: Object.fromEntries(Object.entries(response.headers).map(([name, description]) => [name, { description, schema: { type: "string" as const } }])) } : {}),
          ...(response.schema ? { content: { [response.contentType ?? "application/json"]: { schema: response.schema } } } : {}),
        };
      }
    }
    // The answers every route of its kind can give, unless the route describes them itself.
    const common: Record<number, string | false> = {
      401: spec.auth === "required" && "Not authenticated",
      429: spec.auth === "required" && "Too many wrong passwords from this client or for this account",
      400: spec.body !== undefined && "Malformed JSON or invalid fields",
      413: spec.body !== undefined && "The body is larger than MAX_BODY_BYTES",
      415: spec.body !== undefined && "The body is not application/json",
      503: "The database is not available or the server is overloaded (see Retry-After)",
    };
    for (const [status, description] of Object.entries(common))
      if (description && !responses[status]) responses[status] = { description, content: { "application/problem+json": { schema: ProblemSchema } } };
    // Node's HTTP parser answers it before any route runs, so every route can.
    responses[431] ??= { $ref: HEADERS_TOO_LARGE_REF };
    this.registry.registerPath({
      method: spec.method,
      path: toOpenApiPath(spec.path),
      operationId: spec.operationId,
      summary: spec.summary,
      description: spec.description,
      tags: [spec.tag],
      security: spec.auth === "required" ? [{ bearerAuth: [] }, { basicAuth: [] }] : [],
      request: {
        params: spec.params,
        query: spec.query,
        // A missing body reads as {}: it is optional exactly when {} is valid.
        ...(spec.body ? { body: { required: !spec.body.safeParse({}).success, content: { "application/json": { schema: spec.body } } } } : {}),
        ...(spec.rawBody ? { body: { required: true, content: { [spec.rawBody.contentType]: { schema: spec.rawBody.schema } } } } : {}),
      },
      responses,
    });
  }
}
