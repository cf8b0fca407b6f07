import pino from "pino";

export type Logger = pino.Logger;

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    redact: { paths: ["req.headers.authorization", "req.headers.cookie", "req.headers[\"x-private-id\"]"], censor: "[redacted]" },
  });
}
