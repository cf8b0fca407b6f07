import { OpenAPIRegistry, OpenApiGeneratorV31 } from "@asteasolutions/zod-to-openapi";

export function createRegistry(): OpenAPIRegistry {
  const registry = new OpenAPIRegistry();
  registry.registerComponent("securitySchemes", "bearerAuth", { type: "http", scheme: "bearer", bearerFormat: "JWT" });
  registry.registerComponent("securitySchemes", "basicAuth", { type: "http", scheme: "basic" });
  return registry;
}

export function generateDocument(registry: OpenAPIRegistry, version: string): object {
  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: {
      title: "Convene",
      version,
      description:
        "Open real-time backend for people meeting online. Errors are RFC 9457 application/problem+json. " +
        "Authenticated routes take `Authorization: Bearer <token>` or HTTP Basic.",
    },
  });
}
