// `npm run dev`: `tsc --watch` recompiles what changed into dist/, and `node --watch`
// restarts the server when its compiled files change. The server runs the same compiled
// build as `npm start` (TypeORM needs tsc's decorator metadata), with no tool beyond
// TypeScript and Node. Extra arguments go to node (`npm run dev -- --inspect`).
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tsc = spawn(
  process.execPath,
  [path.join(root, "node_modules", "typescript", "bin", "tsc"), "--watch", "--preserveWatchOutput", "-p", path.join(root, "tsconfig.build.json")],
  { cwd: root, stdio: ["ignore", "pipe", "inherit"] },
);
let server = null;

// tsc prints "Found N errors. Watching for file changes." after each compilation: start the server after the first.
tsc.stdout.setEncoding("utf8");
tsc.stdout.on("data", (chunk) => {
  process.stdout.write(chunk);
  if (server || !/Found \d+ errors?\. Watching for file changes/.test(chunk)) return;
  server = spawn(process.execPath, ["--watch", ...process.argv.slice(2), path.join(root, "dist", "src", "main.js")], { cwd: root, stdio: "inherit" });
  server.on("exit", (code) => stop(code ?? 0));
});
tsc.on("exit", (code) => stop(code ?? 1));

let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  tsc.kill("SIGTERM");
  server?.kill("SIGTERM");
  process.exitCode = code;
}
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => stop(0));
