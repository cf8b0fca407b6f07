import { STATUS_CODES, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { ErrorRequestHandler, RequestHandler } from "express";
import { DomainError, problem, type ProblemDetails } from "../core/errors";
import { toProblem } from "../core/problems";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** A route's own way of presenting a failure: a status and a JSON body, or null for problem+json. */
export type ProblemPresenter = (problem: ProblemDetails, error: unknown) => { status: number; body: object } | null;

export function createErrorHandler(log: { error: (obj: object, msg: string) => void }): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const { problem: body, headers, unexpected } = toProblem(error);
    if (unexpected) log.error({ err: error, reqId: req.id }, "unhandled error");
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    const custom = (res.locals.presentError as ProblemPresenter | undefined)?.(body, error);
    if (custom) res.status(custom.status).json(custom.body);
    else res.status(body.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  };
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new DomainError(404, `No route matches ${req.method} ${req.path}.`));
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

/** A problem+json answer on a response Express does not serve (Node's own events, the slow-client cut); `done` runs once it is sent. */
export function sendProblem(res: ServerResponse, status: number, detail: string, headers: Record<string, string> = {}, done?: () => void): void {
  const body = JSON.stringify(problem(status, detail));
  res.writeHead(status, STATUS_CODES[status], { "Content-Type": PROBLEM_CONTENT_TYPE, "Content-Length": Buffer.byteLength(body), ...headers });
  res.end(body, done);
}

/**
 * A whole HTTP/1.1 problem+json response, for sockets that Express does not serve (parse
 * errors, upgrades); `members` are extension members of the problem.
 */
export function rawProblemResponse(status: number, detail: string, options: { headers?: Record<string, string>; members?: object } = {}): string {
  const body = JSON.stringify({ ...problem(status, detail), ...options.members });
  const headers = Object.entries(options.headers ?? {}).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`;
}
