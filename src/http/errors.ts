import { STATUS_CODES } from "node:http";

export interface FieldProblem {
  /** Where the problem is: "body.username", "query.limit", ... */
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

/** The one error type: thrown anywhere, turned into RFC 9457 problem+json by the error handler. */
export class HttpError extends Error {
  readonly status: number;
  readonly title: string;
  readonly errors?: FieldProblem[];
  readonly headers: Record<string, string>;
  /** A wrong password was presented: counts towards the client's failed-credential limit. */
  readonly credentialFailure: boolean;

  constructor(
    status: number,
    detail: string,
    options: { title?: string; errors?: FieldProblem[]; headers?: Record<string, string>; credentialFailure?: boolean } = {},
  ) {
    super(detail);
    this.name = "HttpError";
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

export const badRequest = (detail: string, errors?: FieldProblem[]) => new HttpError(400, detail, { errors });
export const forbidden = (detail: string) => new HttpError(403, detail);
export const notFound = (detail: string) => new HttpError(404, detail);
export const conflict = (detail: string) => new HttpError(409, detail);
