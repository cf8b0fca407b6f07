import type { ErrorRequestHandler, RequestHandler } from "express";
import { isUniqueViolation, postgresCode } from "../db/data-source";
import { HttpError, problem, type ProblemDetails } from "./errors";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** body-parser's errors carry `type` and `status`; they are the client's fault. */
function fromBodyParser(error: { type?: string; status?: number; limit?: number }): ProblemDetails | null {
  switch (error.type) {
    case "entity.parse.failed":
      return problem(400, "The request body is not valid JSON.");
    case "entity.too.large":
      return problem(413, `The request body is larger than the limit of ${error.limit} bytes.`);
    case "encoding.unsupported":
    case "charset.unsupported":
      return problem(415, "The request body's encoding or charset is not supported; send UTF-8 JSON.");
    case "request.aborted":
      return problem(400, "The request was aborted before its body was complete.");
    default:
      return typeof error.status === "number" && error.status >= 400 && error.status < 500
        ? problem(error.status, "The request could not be read.")
        : null;
  }
}

export function createErrorHandler(log: { error: (obj: object, msg: string) => void }): ErrorRequestHandler {
  return (error, req, res, _next) => {
    let body: ProblemDetails;
    if (error instanceof HttpError) {
      for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
      body = error.toProblem();
    } else if (isUniqueViolation(error)) {
      body = problem(409, "The resource conflicts with one that already exists.");
    } else if (postgresCode(error) === "23503") {
      body = problem(409, "The request refers to something that no longer exists.");
    } else if (["22021", "22P05", "22001"].includes(postgresCode(error) ?? "")) {
      body = problem(400, "The request holds text the database cannot store.");
    } else {
      body = fromBodyParser(error ?? {}) ?? problem(500, "An unexpected error occurred; it has been logged.");
      if (body.status >= 500) log.error({ err: error, reqId: req.id }, "unhandled error");
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(body.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  };
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new HttpError(404, `No route matches ${req.method} ${req.path}.`));
};
