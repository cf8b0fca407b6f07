/**
 * Writes the OpenAPI document the server serves at /openapi.json to the file named by the
 * first argument (`npm run lint:openapi` lints it). It starts the real server, with every
 * module, on an in-memory PGlite database and a free loopback port, and fetches the
 * document over HTTP: what is checked is exactly what clients are given, not a copy built
 * by a second code path.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../src/config";
import { schemaOf } from "../src/core/module";
import { openDatabase } from "../src/db/data-source";
import { createLogger } from "../src/logger";
import { MODULES } from "../src/modules";
import { createBus } from "../src/realtime/bus";
import { createServer } from "../src/server";

async function main(outputFile: string): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "convene-openapi-"));
  try {
    // No ormconfig, Redis or Postgres from the caller's environment: the document does not depend on them.
    const config = loadConfig(
      { LOG_LEVEL: "silent", DATA_DIR: dataDir, UPLOADS_DIR: path.join(dataDir, "uploads"), PGLITE_DATA_DIR: "memory://", JWT_SECRET: randomBytes(32).toString("hex") },
      "/nonexistent/ormconfig.json",
    );
    const log = createLogger(config.logLevel);
    const database = await openDatabase(config.database, schemaOf(MODULES));
    const bus = await createBus(null, log);
    const server = await createServer({ config, dataSource: database.dataSource, bus, log }, MODULES);
    try {
      const { port } = await server.listen(0, "127.0.0.1");
      const response = await fetch(`http://127.0.0.1:${port}/openapi.json`);
      if (!response.ok) throw new Error(`GET /openapi.json answered ${response.status}`);
      fs.writeFileSync(outputFile, `${JSON.stringify(await response.json(), null, 2)}\n`);
    } finally {
      await server.close();
      await bus.close();
      await database.close();
    }
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const outputFile = process.argv[2];
if (!outputFile) {
  process.stderr.write("usage: node dist/scripts/openapi-document.js <output.json>\n");
  process.exit(64); // EX_USAGE
}
main(outputFile).catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
