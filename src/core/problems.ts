import { FOREIGN_KEY_VIOLATION, isUniqueViolation, postgresCode } from "../db/errors";
import { DomainError, problem, type ProblemDetails } from "./errors";

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
// "is not currently accepting connections" is SQLSTATE 55000 (ALLOW_CONNECTIONS false), a
// code too broad to map by itself; "Query runner already released" is TypeORM's answer for a
// transaction whose backend was terminated.
const DATABASE_UNAVAILABLE = /Connection terminated|Query read timeout|not queryable|connection error|not currently accepting connections|Query runner already released|terminating connection/i;

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
  if (error instanceof DomainError) return answer(error.toProblem(), error.headers);
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

