import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

/**
 * The configured secret, or one generated on first start and kept in the data directory
 * under `name`, so what it signs survives a restart. Written to a temporary file and
 * linked into place, which fails if the file exists: when several processes start at
 * once, all read one secret.
 */
export function resolveSecret(name: string, configured: string | null, dataDir: string): string {
  if (configured) return configured;
  const file = path.join(dataDir, name);
  fs.mkdirSync(dataDir, { recursive: true });
  if (!fs.existsSync(file)) {
    const temporary = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, randomBytes(48).toString("base64url"), { mode: 0o600 });
    try {
      fs.linkSync(temporary, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    } finally {
      fs.unlinkSync(temporary);
    }
  }
  const secret = fs.readFileSync(file, "utf8").trim();
  if (secret.length < 32) throw new Error(`${file} holds a secret shorter than 32 characters; delete it to generate a new one`);
  return secret;
}
