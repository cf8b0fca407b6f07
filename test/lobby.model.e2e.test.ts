import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import WebSocket from "ws";
import { basic, freshDatabase, startTestServer, testDatabase, type FreshDatabase, type TestServer } from "./support/test-server";

/** A small lobby client: `ask` sends one message and waits for the next one. */
async function connect(t: TestServer) {
  const ws = new WebSocket(t.url.replace("http", "ws") + "/lobby_api");
  const inbox: any[] = [];
  let wake: (() => void) | null = null;
  ws.on("message", (data) => {
    inbox.push(JSON.parse(data.toString()));
    wake?.();
  });
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const next = async (): Promise<any> => {
    const deadline = Date.now() + 10_000;
    while (inbox.length === 0) {
      if (Date.now() > deadline) throw new Error("no message");
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return inbox.shift();
  };
  const ask = (message: object) => {
    ws.send(JSON.stringify(message));
    return next();
  };
  expect(await ask({ $type: "login", username: "admin", password: "admin" })).toEqual({ $type: "login_successful", user_type: "admin" });
  return { ws, ask, next, inbox };
}

type Table = { id: number; name: string; participants: number };

const op = fc.oneof(
  fc.record({ $type: fc.constant("add_table"), after_id: fc.integer({ min: -1, max: 25 }), id: fc.option(fc.integer({ min: 1, max: 25 })), p: fc.nat(9) }),
  fc.record({ $type: fc.constant("update_table"), id: fc.integer({ min: 1, max: 25 }), p: fc.nat(9) }),
  fc.record({ $type: fc.constant("remove_table"), id: fc.integer({ min: 1, max: 25 }) }),
);

function toMessage(o: any, n: number): object {
  if (o.$type === "add_table") return { $type: o.$type, after_id: o.after_id === 0 ? -1 : o.after_id, table: { ...(o.id === null ? {} : { id: o.id }), name: `t${n}`, participants: o.p } };
  if (o.$type === "update_table") return { $type: o.$type, table: { id: o.id, name: `u${n}`, participants: o.p } };
  return o;
}

/** Applies one event to the model, failing when the event could not have happened in this order. */
function apply(model: Table[], e: any): void {
  if (e.$type === "table_added") {
    expect(model.some((t) => t.id === e.table.id)).toBe(false);
    const at = e.after_id === -1 ? 0 : model.findIndex((t) => t.id === e.after_id) + 1;
    expect(at).toBeGreaterThan(e.after_id === -1 ? -1 : 0);
    model.splice(at, 0, e.table);
  } else if (e.$type === "table_updated") {
    const i = model.findIndex((t) => t.id === e.table.id);
    expect(i).toBeGreaterThanOrEqual(0);
    model[i] = e.table;
  } else {
    const i = model.findIndex((t) => t.id === e.id);
    expect(i).toBeGreaterThanOrEqual(0);
    model.splice(i, 1);
  }
}

test("200 random changes from 3 admins: one order, every version once, the model matches", async () => {
  const t = await startTestServer();
  try {
    const watcher = await connect(t);
    const list = await watcher.ask({ $type: "subscribe_tables" });
    const clients = await Promise.all([connect(t), connect(t), connect(t)]);
    const plans = fc.sample(fc.array(op, { minLength: 67, maxLength: 67 }), { numRuns: 3, seed: 42 });
    let n = 0;
    const results = await Promise.all(
      clients.map(async (c, i) => {
        let ok = 0;
        for (const o of plans[i]) {
          const answer = await c.ask(toMessage(o, n++));
          if (!answer.$type.endsWith("_failed")) ok++;
          expect(answer.$type).toMatch(/^(table_added|table_updated|table_removed|addition_failed|update_failed|removal_failed)$/);
        }
        return ok;
      }),
    );
    const total = results.reduce((a, b) => a + b, 0);
    const events = [];
    for (let i = 0; i < total; i++) events.push(await watcher.next());
    const model: Table[] = [...list.tables];
    events.forEach((e, i) => {
      expect(e.version).toBe(list.version + i + 1);
      apply(model, e);
    });
    const now = await t.http.get("/lobby_api/tables").set("Authorization", basic("admin", "admin"));
    expect(now.body).toEqual({ $type: "table_list", tables: model, version: list.version + total });
    for (const c of [watcher, ...clients]) c.ws.terminate();
  } finally {
    await t.close();
  }
}, 120_000);

test("tables survive a restart", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lobby-restart-"));
  const db: FreshDatabase =
    testDatabase === "pglite"
      ? { config: { kind: "pglite", dataDir: dir, logging: false, connectTimeoutMS: 10_000 }, drop: async () => fs.rmSync(dir, { recursive: true, force: true }) }
      : await freshDatabase();
  try {
    const first = await startTestServer({}, db);
    const added = await first.http.post("/lobby_api/tables").set("Authorization", basic("admin", "admin")).send({ after_id: -1, table: { name: "kept", participants: 3 } });
    expect(added.status).toBe(201);
    await first.close();
    const second = await startTestServer({}, db);
    const list = await second.http.get("/lobby_api/tables").set("Authorization", basic("admin", "admin"));
    expect(list.body).toEqual({ $type: "table_list", tables: [added.body.table], version: added.body.version });
    await second.close();
  } finally {
    await db.drop();
  }
}, 60_000);
