import type { Request, Response } from "express";
import { badRequest } from "../../core/errors";
import { z } from "../../http/zod";
import { isReplay } from "./messaging.service";

/** An idempotency key: 1–64 characters (REST header `Idempotency-Key`, Socket.IO `idempotency_key`). */
export const IdempotencyKeySchema = z.string().min(1).max(64);

/** The request's `Idempotency-Key`, if it has one; 400 when it is not 1–64 characters. */
export function idempotencyKeyOf(req: Request): string | undefined {
  const value = req.headers["idempotency-key"];
  if (value === undefined) return undefined;
  const parsed = IdempotencyKeySchema.safeParse(value);
  if (!parsed.success)
    throw badRequest("Idempotency-Key must be one header of 1–64 characters.", [{ field: "header.Idempotency-Key", message: "must be 1–64 characters" }]);
  return parsed.data;
}

/** 201 with the message; a replayed post says so in `Idempotent-Replayed: true`. */
export function sendPosted(res: Response, posted: object, body: object = posted): void {
  if (isReplay(posted)) res.setHeader("Idempotent-Replayed", "true");
  res.status(201).json(body);
}
