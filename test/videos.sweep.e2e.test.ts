import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";
import { freshDatabase, registerUser, startTestServer, testDatabase, type FreshDatabase } from "./support/test-server";

const box = (type: string, body: Buffer) => {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length);
  head.write(type, 4, "latin1");
  return Buffer.concat([head, body]);
};
const mp4 = () => Buffer.concat([box("ftyp", Buffer.from("isom\0\0\0\0isom")), box("free", Buffer.alloc(500, 1))]);

let dir: string;
let fresh: FreshDatabase;
let pgliteDir: string | null = null;
// One JWT secret for every server of this file, so a token outlives a restart.
const jwtSecret = randomUUID();
const env = () => ({ UPLOADS_DIR: dir, JWT_SECRET: jwtSecret });

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "convene-sweep-"));
  // The database must outlive one server: PGlite on disk, or a fresh Postgres database.
  if (testDatabase === "pglite") {
    pgliteDir = fs.mkdtempSync(path.join(os.tmpdir(), "convene-sweep-db-"));
    fresh = { config: { kind: "pglite", dataDir: pgliteDir, logging: false, connectTimeoutMS: 10_000 }, drop: async () => {} };
  } else fresh = await freshDatabase();
});
afterAll(async () => {
  await fresh.drop();
  fs.rmSync(dir, { recursive: true, force: true });
  if (pgliteDir) fs.rmSync(pgliteDir, { recursive: true, force: true });
});

/** Stale temp files, orphans and rows without files are planted while no server runs. */
async function plant() {
  const t = await startTestServer(env(), fresh);
  const user = await registerUser(t);
  const up = async (title: string) =>
    (await t.http.post("/videos").set("Authorization", `Bearer ${user.token}`).field("title", title).attach("video", mp4(), "a.mp4")).body as { id: string };
  const kept = await up("kept");
  const gone = await up("gone");
  await t.close();
  const byId = (id: string) => fs.readdirSync(dir).find((n) => n.startsWith(id))!;
  fs.rmSync(path.join(dir, byId(gone.id)));
  const tmp = path.join(dir, ".tmp");
  const stale = path.join(tmp, `${randomUUID()}.part`);
  const inProgress = path.join(tmp, `${randomUUID()}.part`);
  const orphan = path.join(dir, `${randomUUID()}.mp4`);
  for (const f of [stale, inProgress, orphan]) fs.writeFileSync(f, "x");
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  fs.utimesSync(stale, twoHoursAgo, twoHoursAgo);
  fs.utimesSync(orphan, twoHoursAgo, twoHoursAgo);
  return { user, kept, gone, stale, inProgress, orphan, keptFile: path.join(dir, byId(kept.id)) };
}

describe("the start-up sweep", () => {
  if (testDatabase === "postgres")
    it("steps aside while another process holds its lock", async () => {
      const p = await plant();
      const holder = new Client({ connectionString: (fresh.config as { url: string }).url });
      await holder.connect();
      await holder.query("SELECT pg_advisory_lock(7630006)");
      try {
        const t = await startTestServer(env(), fresh);
        expect(fs.existsSync(p.stale)).toBe(true);
        expect(fs.existsSync(p.orphan)).toBe(true);
        await t.close();
      } finally {
        await holder.end();
      }
    });

  it("removes stale temp files, orphan files and rows without a file, and keeps an upload in progress", async () => {
    const p = await plant();
    const t = await startTestServer(env(), fresh);
    try {
      expect(fs.existsSync(p.stale)).toBe(false);
      expect(fs.existsSync(p.orphan)).toBe(false);
      expect(fs.existsSync(p.inProgress)).toBe(true);
      expect(fs.existsSync(p.keptFile)).toBe(true);
      const ids = (await t.http.get("/videos").set("Authorization", `Bearer ${p.user.token}`)).body.items.map((v: { id: string }) => v.id);
      expect(ids).toContain(p.kept.id);
      expect(ids).not.toContain(p.gone.id);
    } finally {
      await t.close();
    }
  });
});
