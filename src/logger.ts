import pino from "pino";

export type Logger = pino.Logger;

/** JSON lines to stdout, or to `destination` (tests read what the server logs). */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    redact: { paths: ["req.headers.authorization", "req.headers.cookie", "req.headers[\"x-private-id\"]"], censor: "[redacted]" },
  };
  return destination ? pino(options, destination) : pino(options);
}
