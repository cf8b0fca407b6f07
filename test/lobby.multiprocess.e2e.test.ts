import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { startProcess, type ServerProcess } from "./support/processes";
import { freshDatabase, testDatabase, type FreshDatabase } from "./support/test-server";

/** Two server processes on one Postgres and one Redis: one lobby, one order. Skipped without REDIS_URL. */
const enabled = testDatabase === "postgres" && !!process.env.REDIS_URL;
const describeShared = enabled ? describe : describe.skip;

let database: FreshDatabase;
const processes: ServerProcess[] = [];
const urls: string[] = [];
const open: WebSocket[] = [];

beforeAll(async () => {
  if (!enabled) return;
  database = await freshDatabase();
  if (database.config.kind !== "postgres") throw new Error("postgres expected");
  const env = {
    HOST: "127.0.0.1",
    PORT: "0",
    DATABASE_URL: database.config.url,
    REDIS_URL: process.env.REDIS_URL!,
    REDIS_PREFIX: `convene-test-${randomBytes(6).toString("hex")}:`,
    JWT_SECRET: randomBytes(32).toString("hex"),
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), "convene-lobby-mp-")),
    BCRYPT_ROUNDS: "4",
    RATE_LIMIT_AUTH_PER_MINUTE: "0",
    LOG_LEVEL: "info",
  };
  // One after the other: both would run the migrations at once otherwise.
  for (let i = 0; i < 2; i++) {
    const p = startProcess(env);
    processes.push(p);
    urls.push(await p.listening());
  }
}, 60_000);

afterAll(async () => {
  if (!enabled) return;
  for (const ws of open) ws.terminate();
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await database.drop();
});

async function client(url: string, username: string, password: string) {
  const ws = new WebSocket(url.replace("http", "ws") + "/lobby_api");
  open.push(ws);
  const inbox: any[] = [];
  let closed: number | null = null;
  ws.on("message", (data) => inbox.push(JSON.parse(data.toString())));
  ws.on("close", (code) => (closed = code));
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const waitFor = async (n: number, ms = 15_000) => {
    for (let i = 0; i < ms / 25 && inbox.length < n; i++) await new Promise((r) => setTimeout(r, 25));
    return inbox.splice(0, n);
  };
  const ask = async (message: object) => {
    ws.send(JSON.stringify(message));
    return (await waitFor(1))[0];
  };
  expect(await ask({ $type: "login", username, password })).toMatchObject({ $type: "login_successful" });
  return { ws, inbox, ask, waitFor, closed: () => closed };
}

async function http(url: string, method: string, route: string, body?: unknown) {
  const res = await fetch(url + route, {
    method,
    headers: { authorization: `Basic ${Buffer.from("admin:admin").toString("base64")}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: res.status === 204 ? null : ((await res.json()) as any) };
}

describeShared("the lobby on two processes", () => {
  it("every subscriber on both sees every change of three concurrent admins in one order, versions +1, no gaps", async () => {
    const [a, b] = urls;
    const subscribers = await Promise.all([a, a, b, b].map((url) => client(url, "admin", "admin")));
    const lists = await Promise.all(subscribers.map((s) => s.ask({ $type: "subscribe_tables" })));
    const start = lists[0].version;
    for (const list of lists) expect(list).toMatchObject({ $type: "table_list", version: start });
    const admins = await Promise.all([a, b, a].map((url) => client(url, "admin", "admin")));
    const PER_ADMIN = 20;
    const counts = await Promise.all(
      admins.map(async (admin, i) => {
        let ok = 0;
        for (let n = 0; n < PER_ADMIN; n++) {
          // All at the head of the list at once, with a few updates and removals of their own.
          const answer = await admin.ask({ $type: "add_table", after_id: -1, table: { name: `a${i}-${n}`, participants: n } });
          expect(answer.$type).toBe("table_added");
          ok++;
          if (n % 5 === 4) {
            expect((await admin.ask({ $type: "update_table", table: { ...answer.table, participants: 99 } })).$type).toBe("table_updated");
            expect((await admin.ask({ $type: "remove_table", id: answer.table.id })).$type).toBe("table_removed");
            ok += 2;
          }
        }
        return ok;
      }),
    );
    const total = counts.reduce((x, y) => x + y, 0);
    const seen = await Promise.all(subscribers.map((s) => s.waitFor(total)));
    for (const events of seen) {
      expect(events.map((e) => e.version)).toEqual(Array.from({ length: total }, (_, i) => start + i + 1));
      expect(events).toEqual(seen[0]);
    }
    const finalA = await http(a, "GET", "/lobby_api/tables");
    const finalB = await http(b, "GET", "/lobby_api/tables");
    expect(finalA.body).toEqual(finalB.body);
    expect(finalA.body.version).toBe(start + total);
  }, 120_000);

  it("a demotion, a password change and a deletion on one process reach lobby logins on the other", async () => {
    const [a, b] = urls;
    const reg = await fetch(`${a}/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "lobby_mp_admin", password: "first password" }) });
    const { token } = (await reg.json()) as any;
    expect((await http(a, "PATCH", "/users/lobby_mp_admin", { user_type: "admin" })).status).toBe(200);
    const onB = await client(b, "lobby_mp_admin", "first password");
    const added = await onB.ask({ $type: "add_table", after_id: -1, table: { name: "mp", participants: 0 } });
    expect(added.$type).toBe("table_added");
    expect((await http(a, "PATCH", "/users/lobby_mp_admin", { user_type: "user" })).status).toBe(200);
    // Across the bus: allow it a moment to arrive.
    let answer: any;
    for (let i = 0; i < 20; i++) {
      answer = await onB.ask({ $type: "update_table", table: { ...added.table, participants: i + 1 } });
      if (answer.$type === "not_authorized") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(answer).toEqual({ $type: "not_authorized" });

    const changed = await fetch(`${a}/users/lobby_mp_admin`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ password: "second password", current_password: "first password" }),
    });
    expect(changed.status).toBe(200);
    for (let i = 0; i < 100 && onB.closed() === null; i++) await new Promise((r) => setTimeout(r, 50));
    expect(onB.closed()).toBe(1008);

    const again = await client(b, "lobby_mp_admin", "second password");
    expect((await http(a, "DELETE", "/users/lobby_mp_admin")).status).toBe(204);
    for (let i = 0; i < 100 && again.closed() === null; i++) await new Promise((r) => setTimeout(r, 50));
    expect(again.closed()).toBe(1008);
  }, 60_000);
});
