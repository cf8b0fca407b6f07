import { STATUS_CODES } from "node:http";

export interface FieldProblem {
  /** Where the problem is: "body.username", "query.limit", "payload.guid", ... */
  field: string;
  message: string;
}

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldProblem[];
}

/**
 * The one error type of the domain: services throw it, and each door presents it
 * (problem+json over HTTP, an `{ok: false, error}` ack over Socket.IO, a `$type`
 * failure on the lobby's WebSocket). The status is the HTTP status that says what went
 * wrong, which every door understands.
 */
export class DomainError extends Error {
  readonly status: number;
  readonly title: string;
  readonly errors?: FieldProblem[];
  /** Hints for the HTTP door (WWW-Authenticate, Retry-After); other doors ignore them. */
  readonly headers: Record<string, string>;
  /** A wrong password was presented: counts towards the client's failed-credential limit. */
  readonly credentialFailure: boolean;

  constructor(
    status: number,
    detail: string,
    options: { title?: string; errors?: FieldProblem[]; headers?: Record<string, string>; credentialFailure?: boolean } = {},
  ) {
    super(detail);
    this.name = "DomainError";
    this.status = status;
    this.title = options.title ?? STATUS_CODES[status] ?? "Error";
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.credentialFailure = options.credentialFailure ?? false;
  }

  toProblem(): ProblemDetails {
    return problem(this.status, this.message, { title: this.title, errors: this.errors });
  }
}

export function problem(
  status: number,
  detail: string,
  options: { title?: string; errors?: FieldProblem[] } = {},
): ProblemDetails {
  const title = options.title ?? STATUS_CODES[status] ?? "Error";
  return {
    type: `https://convene.dev/problems/${title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "")}`,
    title,
    status,
    detail,
    ...(options.errors ? { errors: options.errors } : {}),
  };
}

const WWW_AUTHENTICATE = 'Bearer realm="convene", Basic realm="convene", charset="UTF-8"';

export const badRequest = (detail: string, errors?: FieldProblem[]) => new DomainError(400, detail, { errors });
export const unauthorized = (detail: string, options: { credentialFailure?: boolean } = {}) =>
  new DomainError(401, detail, { headers: { "WWW-Authenticate": WWW_AUTHENTICATE }, ...options });
export const forbidden = (detail: string) => new DomainError(403, detail);
export const notFound = (detail: string) => new DomainError(404, detail);
export const conflict = (detail: string) => new DomainError(409, detail);
export const tooLarge = (detail: string) => new DomainError(413, detail);
export const unavailable = (detail: string, retryAfterSeconds = 5) =>
  new DomainError(503, detail, { headers: { "Retry-After": String(retryAfterSeconds) } });
