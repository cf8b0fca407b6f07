import { extendZodWithOpenApi } from "@asteasolutions/zod-to-openapi";
import { z } from "zod";

// Every schema imports z from here, so `.openapi()` is available before any is built.
extendZodWithOpenApi(z);

export { z };
