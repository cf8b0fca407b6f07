import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { ErrorRequestHandler, RequestHandler } from "express";
import { FOREIGN_KEY_VIOLATION, isUniqueViolation, postgresCode } from "../db/data-source";
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

/** pg-pool's error when no connection frees up in time: the server is overloaded, not broken. */
const POOL_TIMEOUT = /timeout exceeded when trying to connect|Connection terminated due to connection timeout/;

/**
 * The database cannot answer now (down, restarting, dropped, unreachable, or a statement
 * ran past its timeout): a 503 the client may retry, not a bug.
 */
const DATABASE_UNAVAILABLE_CODES = new Set(["57P01", "57P02", "57P03", "3D000", "53300", "57014", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN"]);
const DATABASE_UNAVAILABLE = /Connection terminated|Query read timeout|not queryable|connection error/i;

function databaseUnavailable(error: unknown, code: string | undefined): boolean {
  if (code && (code.startsWith("08") || DATABASE_UNAVAILABLE_CODES.has(code))) return true;
  return error instanceof Error && DATABASE_UNAVAILABLE.test(error.message);
}

/**
 * The problem details for any error, for HTTP answers and Socket.IO acks alike. Only a
 * 500 is a bug; `unexpected` says so, so the caller logs it.
 */
export function toProblem(error: unknown): { problem: ProblemDetails; headers: Record<string, string>; unexpected: boolean } {
  const answer = (p: ProblemDetails, headers: Record<string, string> = {}) => ({ problem: p, headers, unexpected: false });
  if (error instanceof HttpError) return answer(error.toProblem(), error.headers);
  if (isUniqueViolation(error)) return answer(problem(409, "The resource conflicts with one that already exists."));
  const code = postgresCode(error);
  if (code === FOREIGN_KEY_VIOLATION) return answer(problem(409, "The request refers to something that no longer exists."));
  if (code === "22021" || code === "22P05" || code === "22001") return answer(problem(400, "The request holds text the database cannot store."));
  if (error instanceof Error && POOL_TIMEOUT.test(error.message))
    return answer(problem(503, "The server is too busy to answer now; try again shortly."), { "Retry-After": "1" });
  if (databaseUnavailable(error, code))
    return answer(problem(503, "The database is not available now; try again shortly."), { "Retry-After": "5" });
  const fromParser = fromBodyParser((error ?? {}) as { type?: string; status?: number; limit?: number });
  if (fromParser) return answer(fromParser);
  return { problem: problem(500, "An unexpected error occurred; it has been logged."), headers: {}, unexpected: true };
}

export function createErrorHandler(log: { error: (obj: object, msg: string) => void }): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const { problem: body, headers, unexpected } = toProblem(error);
    if (unexpected) log.error({ err: error, reqId: req.id }, "unhandled error");
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    res.status(body.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  };
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new HttpError(404, `No route matches ${req.method} ${req.path}.`));
};

/**
 * Requests Node's HTTP parser refuses before Express sees them (headers too large, a
 * malformed request line) still get a problem+json answer: the http server's
 * "clientError" listener.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  // A response already under way on this connection (a pipelined request after an event
  // stream, say) must not get another answer written into its body.
  const inProgress = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
  if (!socket.writable || error.code === "ECONNRESET" || inProgress) {
    socket.destroy();
    return;
  }
  const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
  const detail = status === 431 ? "The request headers are too large." : status === 408 ? "The request took too long to arrive." : "The request is not valid HTTP.";
  socket.end(rawProblemResponse(status, detail));
}

/** A whole HTTP/1.1 problem+json response, for sockets that Express does not serve (parse errors, upgrades). */
export function rawProblemResponse(status: number, detail: string): string {
  const body = JSON.stringify(problem(status, detail));
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}
