import { Client } from "pg";
import { freshDatabase, registerUser, startTestServer, testDatabase } from "./support/test-server";

// A database that refuses connections (ALLOW_CONNECTIONS false, its backends terminated) is
// unavailable, not broken: 503 with Retry-After, never a 500 or a hang; then it recovers.
(testDatabase === "postgres" ? it : it.skip)("answers 503 with Retry-After while the database refuses connections, then recovers", async () => {
  const db = await freshDatabase();
  const name = db.config.kind === "postgres" ? new URL(db.config.url).pathname.slice(1) : "";
  const t = await startTestServer({}, db);
  const admin = new Client({ connectionString: process.env.DATABASE_URL });
  await admin.connect();
  try {
    const user = await registerUser(t);
    const auth = { Authorization: `Bearer ${user.token}` };
    expect((await t.http.get("/chat/rooms").set(auth)).status).toBe(200);

    await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [name]);
    const statuses: number[] = [];
    const started = Date.now();
    for (let i = 0; i < 20; i += 1) {
      const res = await t.http.get("/chat/rooms").set(auth).timeout(5_000);
      statuses.push(res.status);
      if (res.status === 503) {
        expect(res.headers["retry-after"]).toMatch(/^\d+$/);
        expect(res.headers["content-type"]).toMatch(/application\/problem\+json/);
      }
    }
    expect(statuses.filter((s) => s !== 503)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect((await t.http.get("/ready")).status).toBe(503);

    await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i += 1) {
      status = (await t.http.get("/chat/rooms").set(auth)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
  } finally {
    await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`).catch(() => {});
    await admin.end();
    await t.close();
  }
}, 60_000);
