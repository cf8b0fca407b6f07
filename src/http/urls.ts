import type { Request } from "express";

/**
 * An absolute URL for a path: PUBLIC_URL when configured, else the request's own origin
 * (the address it arrived on when an HTTP/1.0 client sent no Host).
 */
export function absoluteUrl(req: Request, publicUrl: string | null, path: string): string {
  if (publicUrl) return `${publicUrl}${path}`;
  const address = req.socket.localAddress ?? "localhost";
  const host = req.get("host") || `${address.includes(":") ? `[${address}]` : address}:${req.socket.localPort}`;
  return `${req.protocol}://${host}${path}`;
}
