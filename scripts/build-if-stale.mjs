// `npm start`'s prestart: compiles only when a source is newer than the last build, so
// a restart with a current build goes straight to `node` (type-checking the whole
// program takes tens of seconds on a busy 2-core machine, even when nothing changed).
// The build is incremental (tsconfig.build.json), its state in dist/ so a deleted dist
// rebuilds in full. Needs no dependency: works after `npm ci --omit=dev` with a built dist.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const STAMP = path.join(root, "dist", ".tsbuildinfo");
/** What tsconfig.build.json compiles (its `include`), and the files that shape its output. */
const SOURCE_DIRS = ["src", "bench", "scripts"];
const SOURCE_FILES = ["tsconfig.json", "tsconfig.build.json", "package.json"];

function newestSource() {
  let newest = { file: "", mtime: 0 };
  const visit = (file) => {
    const stat = fs.statSync(file, { throwIfNoEntry: false });
    if (!stat) return;
    // A directory's own time changes when a file in it is added, removed or renamed.
    if ((stat.isDirectory() || /\.(ts|json)$/.test(file)) && stat.mtimeMs > newest.mtime) newest = { file, mtime: stat.mtimeMs };
    if (stat.isDirectory()) for (const entry of fs.readdirSync(file)) visit(path.join(file, entry));
  };
  for (const dir of SOURCE_DIRS) visit(path.join(root, dir));
  for (const file of SOURCE_FILES) visit(path.join(root, file));
  return newest;
}

// tsc's incremental state says nothing of outputs deleted since: without the entry point, build in full.
if (!fs.existsSync(path.join(root, "dist", "src", "main.js"))) fs.rmSync(STAMP, { force: true });
const built = fs.statSync(STAMP, { throwIfNoEntry: false })?.mtimeMs ?? 0;
const newest = newestSource();
if (built > 0 && newest.mtime <= built) process.exit(0);

console.error(built === 0 ? "building (no build in dist/)" : `building (${path.relative(root, newest.file)} changed)`);
const tsc = spawnSync(process.execPath, [path.join(root, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(root, "tsconfig.build.json")], { stdio: "inherit" });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
// tsc leaves its state file alone when no output changed (a touched file, a checkout): mark the build current.
const now = new Date();
fs.utimesSync(STAMP, now, now);
