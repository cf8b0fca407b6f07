import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { freshDatabase, testDatabase, testEnv, type FreshDatabase } from "./support/test-server";
import { startProcess, type ServerProcess } from "./support/processes";

const MiB = 1024 * 1024;
const FILE_MIB = 512;

let dir: string;
let fresh: FreshDatabase | null = null;
let server: ServerProcess;
let url: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "convene-large-"));
  const ormConfig = path.join(dir, "ormconfig.json");
  fs.writeFileSync(ormConfig, "{}\n");
  const uploads = path.join(dir, "uploads");
  const database: Record<string, string> = testDatabase === "postgres"
    ? { DATABASE_URL: (fresh = await freshDatabase()).config.kind === "postgres" ? (fresh.config as { url: string }).url : "" }
    : { PGLITE_DATA_DIR: "memory://" };
  // Quiet logs hide the "listening" line the helper waits for: info, but nothing per request matters here.
  server = startProcess(testEnv({ ...database, LOG_LEVEL: "info", PORT: "0", HOST: "127.0.0.1", ORMCONFIG: ormConfig, UPLOADS_DIR: uploads,
    MAX_UPLOAD_BYTES: String((FILE_MIB + 8) * MiB) }));
  url = await server.listening();
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await fresh?.drop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const rss = (pid: number) => Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

async function token(): Promise<string> {
  const res = await fetch(`${url}/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: `large_${process.pid}`, password: "correct horse" }) });
  return ((await res.json()) as { token: string }).token;
}

/** A multipart upload of `mib` MiB written chunk by chunk with backpressure: the test never holds the file either. */
function streamUpload(bearer: string, mib: number): Promise<{ status: number; body: string }> {
  const boundary = "convene-large-boundary";
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nlarge\r\n--${boundary}\r\nContent-Disposition: form-data; name="video"; filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  // ftyp, then one `free` box covering the rest of the file.
  const first = Buffer.alloc(MiB, 0x5a);
  first.writeUInt32BE(16, 0);
  first.write("ftypisom", 4, "latin1");
  first.writeUInt32BE(0, 12);
  first.writeUInt32BE(mib * MiB - 16, 16);
  first.write("free", 20, "latin1");
  const chunk = Buffer.alloc(MiB, 0xa5);
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: "/videos", method: "POST", headers: {
      authorization: `Bearer ${bearer}`, "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": String(head.length + mib * MiB + tail.length) } });
    req.on("error", reject);
    req.on("response", (res) => { let body = ""; res.on("data", (d) => (body += d)); res.on("end", () => resolve({ status: res.statusCode!, body })); });
    let sent = 0;
    const pump = () => {
      while (sent < mib) {
        const ok = req.write(sent === 0 ? first : chunk);
        sent++;
        if (!ok) return void req.once("drain", pump);
      }
      req.end(tail);
    };
    req.write(head);
    pump();
  });
}

describe("a large upload", () => {
  it(`streams ${FILE_MIB} MiB to disk without holding it in memory`, async () => {
    const bearer = await token();
    const pid = server.child.pid!;
    const before = rss(pid);
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, rss(pid)); }, 20);
    const res = await streamUpload(bearer, FILE_MIB).finally(() => clearInterval(sampler));
    expect(res.status).toBe(201);
    const video = JSON.parse(res.body) as { id: string; size: number };
    expect(video.size).toBe(FILE_MIB * MiB);
    const growth = peak - before;
    process.stderr.write(`RSS before ${(before / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB, growth ${(growth / MiB).toFixed(0)} MiB for a ${FILE_MIB} MiB upload\n`);
    // Buffers in flight and the odd GC delay, not the file: far under its size.
    expect(growth).toBeLessThan(FILE_MIB * MiB / 4);
    expect((await fetch(`${url}/videos/${video.id}`, { method: "DELETE", headers: { authorization: `Bearer ${bearer}` } })).status).toBe(204);
  }, 120_000);
});
