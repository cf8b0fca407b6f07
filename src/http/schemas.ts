import { z } from "./zod";

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .openapi("Problem", { description: "RFC 9457 problem details" });

/**
 * User-written text: lengths count characters (code points, as Postgres' char_length
 * does, so an emoji is one), and NUL, which Postgres cannot store, is refused.
 */
export function text(min: number, max: number) {
  return z
    .string()
    .refine((s) => !s.includes("\u0000"), "must not contain NUL characters")
    .refine((s) => {
      const length = [...s].length;
      return length >= min && length <= max;
    }, `must be ${min}–${max} characters`);
}

export const LimitSchema = z.coerce.number().int().min(1).max(200).default(50);

/** `?limit=&cursor=` for every paginated list. */
export const PageQuerySchema = z.object({
  limit: LimitSchema,
  cursor: z.string().max(500).optional(),
});

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), next_cursor: z.string().nullable() });
}
