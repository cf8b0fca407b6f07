import fs from "node:fs";
import { processEnv, startProcess, type ServerProcess } from "./support/processes";
import { get, postJson, refusesConnections, slowLogin, statusOf } from "./support/drain";
import { freshDatabase, testDatabase, type FreshDatabase } from "./support/test-server";

/**
 * Graceful drain with PROCESSES=2 (issue #13, item 3): the primary forwards SIGTERM to
 * its workers, keeps handing connections over for the drain delay, and waits for the
 * workers to finish what is in flight. Needs Postgres and Redis: the postgres project
 * with REDIS_URL.
 */
const enabled = testDatabase === "postgres" && !!process.env.REDIS_URL;
const describeShared = enabled ? describe : describe.skip;
const DELAY_S = 2;

let database: FreshDatabase;
let server: ServerProcess | undefined;
let dataDir: string | undefined;

beforeAll(async () => {
  if (!enabled) return;
  database = await freshDatabase();
});
afterAll(async () => {
  if (!enabled) return;
  await server?.stop("SIGKILL");
  await database.drop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describeShared("PROCESSES=2 on SIGTERM", () => {
  it("workers answer /ready 503, the primary keeps accepting for the delay, in-flight requests finish, every process exits", async () => {
    if (database.config.kind !== "postgres") throw new Error("postgres expected");
    const env = processEnv(database.config.url, { PROCESSES: "2", DRAIN_DELAY_SECONDS: String(DELAY_S), SHUTDOWN_GRACE_SECONDS: "30" });
    dataDir = env.DATA_DIR;
    server = startProcess(env);
    const url = await server.listening(60_000);
    const user = { username: `drain_mp_${process.pid}`, password: "drain password" };
    expect((await postJson(`${url}/auth/register`, user)).status).toBe(201);

    // No kept-alive connection with PROCESSES > 1: @socket.io/sticky's workers answer every request with Connection: close.
    expect((await get(`${url}/ready`, false))).toMatchObject({ status: 200, connection: "close" });
    const slow = await slowLogin(url, user, (DELAY_S + 1) * 1000);

    const signalled = Date.now();
    server.child.kill("SIGTERM");
    // Every worker answers /ready 503 once the primary has forwarded the signal.
    let ready = await get(`${url}/ready`, false);
    while (ready.status === 200 && Date.now() - signalled < 2000) ready = await get(`${url}/ready`, false);
    expect(ready.status).toBe(503);
    for (let i = 0; i < 4; i++) expect((await get(`${url}/ready`, false)).status).toBe(503);
    // New connections are still handed to the draining workers during the delay.
    for (let i = 0; i < 4; i++) expect(await get(`${url}/health`, false)).toMatchObject({ status: 200, connection: "close" });
    expect(Date.now() - signalled).toBeLessThan(DELAY_S * 1000);

    // Then the port closes, the slow login in flight still finishes, and every process exits cleanly.
    expect(await refusesConnections(url, 5000)).toBe(true);
    await slow.sent;
    expect(statusOf(await slow.answer)).toBe(200);
    expect(await server.exited).toBe(0);
    const pids = new Set([...server.output().matchAll(/"pid":(\d+)[^\n]*"msg":"stopped"/g)].map((m) => m[1]));
    expect(pids.size).toBe(3);
  });
});
