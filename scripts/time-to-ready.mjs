// Measures how long `npm start` takes to answer 200 on /ready, on PGlite with a fresh
// data directory in a temp dir: a first start (dist/ deleted, so a full build, and an
// empty database), a restart (build current, the same database), and a start after a
// source file was touched (an incremental build). `--no-first` keeps dist/ and skips the
// first. Prints one line per start, in milliseconds.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const TIMEOUT_MS = 300_000;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function timeToReady(dataDir) {
  const port = await freePort();
  const env = { ...process.env, HOST: "127.0.0.1", PORT: String(port), DATA_DIR: dataDir, PGLITE_DATA_DIR: path.join(dataDir, "db"), UPLOADS_DIR: path.join(dataDir, "uploads"), ADMIN_PASSWORD: randomBytes(12).toString("hex"), LOG_LEVEL: "warn" };
  // PGlite, one process: whatever the calling shell has set.
  for (const name of ["DATABASE_URL", "REDIS_URL", "PROCESSES", "ORMCONFIG"]) delete env[name];
  const started = performance.now();
  // Its own process group, so stopping it reaches the server under npm.
  const child = spawn("npm", ["start", "--silent"], { cwd: root, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`npm start exited (${child.exitCode}):\n${output}`);
      if (performance.now() - started > TIMEOUT_MS) throw new Error(`not ready after ${TIMEOUT_MS} ms:\n${output}`);
      const status = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status, () => 0);
      if (status === 200) return Math.round(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  } finally {
    if (child.exitCode === null) process.kill(-child.pid, "SIGTERM");
    await exited;
  }
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "convene-ready-"));
try {
  if (!process.argv.includes("--no-first")) {
    fs.rmSync(path.join(root, "dist"), { recursive: true, force: true });
    console.log(`first start (no dist/, new database): ${await timeToReady(dataDir)} ms`);
  }
  console.log(`restart (build current): ${await timeToReady(dataDir)} ms`);
  const now = new Date();
  fs.utimesSync(path.join(root, "src", "main.ts"), now, now);
  console.log(`start after touching src/main.ts (incremental build): ${await timeToReady(dataDir)} ms`);
} finally {
  fs.rmSync(dataDir, { recursive: true, force: true });
}
