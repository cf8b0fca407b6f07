import { OpenAPIRegistry, OpenApiGeneratorV31 } from "@asteasolutions/zod-to-openapi";
import { ProblemSchema } from "./schemas";

/** The answer Node's HTTP parser gives on every path when the request headers are too large. */
export const HEADERS_TOO_LARGE_REF = "#/components/responses/HeadersTooLarge";

export function createRegistry(): OpenAPIRegistry {
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "bearerAuth", { type: "http", scheme: "bearer", bearerFormat: "JWT" });
  registry.registerComponent("securitySchemes", "basicAuth", { type: "http", scheme: "basic" });
  registry.register("Problem", ProblemSchema);
  registry.registerComponent("responses", "HeadersTooLarge", {
    description: "The request headers are too large (answered before routing, on every path)",
    content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
  });
  return registry;
}

export interface DocumentOptions {
  version: string;
  /** Every tag the routes use, with its description (`Api.tags()`). */
  tags: Array<{ name: string; description: string }>;
  /** PUBLIC_URL, when configured. */
  publicUrl: string | null;
}

export function generateDocument(registry: OpenAPIRegistry, { version, tags, publicUrl }: DocumentOptions): object {
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "Convene",
      version,
      license: { name: "MIT", identifier: "MIT" },
      description:
        "Open real-time backend for people meeting online. Errors are RFC 9457 application/problem+json. " +
        "Authenticated routes take `Authorization: Bearer <token>` or HTTP Basic.",
    },
    // The document is served by the server it describes, so by default its server is "/":
    // a relative URL resolves against wherever the client fetched /openapi.json from (the
    // host, port and scheme it used, through any proxy), which /docs and generators handle
    // and a fixed host from config could get wrong. PUBLIC_URL, when set, is the address
    // the operator says clients use (it is already the base of Location), so it comes first
    // for tools that read a saved copy of the document.
    servers: [
      ...(publicUrl ? [{ url: publicUrl, description: "PUBLIC_URL" }] : []),
      { url: "/", description: "this server (the origin /openapi.json was fetched from)" },
    ],
    tags,
  });
}
