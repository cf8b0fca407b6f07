import type { Request } from "express";

/** An absolute URL for a path: PUBLIC_URL when configured, else the request's own origin. */
export function absoluteUrl(req: Request, publicUrl: string | null, path: string): string {
  return `${publicUrl ?? `${req.protocol}://${req.get("host")}`}${path}`;
}
