import { z } from "./zod";
import { characterCount } from "../core/text";

export { characterCount };

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
    // JSON can carry half a surrogate pair; the database would store it as U+FFFD.
    .refine((s) => !LONE_SURROGATE.test(s), "must be valid Unicode (no unpaired surrogates)")
    .refine((s) => {
      const length = characterCount(s);
      return length >= min && length <= max;
    }, `must be ${min}–${max} characters`)
    // Metadata both documents read: OpenAPI (zod-to-openapi) and AsyncAPI (z.toJSONSchema).
    .meta({ minLength: min, maxLength: max });
}



const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A uuid as input: any letter case, compared and stored in lower case. */
export const UuidInput = z
  .uuid()
  .transform((id) => id.toLowerCase())
  .openapi({ type: "string", format: "uuid" });

export const LimitSchema = z
  .string()
  .regex(/^[0-9]{1,3}$/, "must be a whole number from 1 to 200")
  .transform(Number)
  .pipe(z.number().int().min(1, "must be a whole number from 1 to 200").max(200, "must be a whole number from 1 to 200"))
  .optional()
  .transform((limit) => limit ?? 50)
  .openapi({ type: "integer", minimum: 1, maximum: 200, default: 50 });

/** `?limit=&cursor=` for every paginated list. */
export const PageQuerySchema = z.object({
  limit: LimitSchema,
  cursor: z.string().max(500).optional(),
});

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), next_cursor: z.string().nullable() });
}

/** An id within an ordered stream (a message id, a lobby version): the decimal string of a 64-bit integer. */
export const StreamIdSchema = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,18})$/, "a message id (decimal digits)")
  // Plain string comparison: the pattern already rules out signs and leading zeros.
  .refine((v) => v.length < 19 || (v.length === 19 && v <= "9223372036854775807"), "a message id (a 64-bit integer)")
  .openapi({ example: "1042" });
