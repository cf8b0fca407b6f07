import WebSocket from "ws";
import { createLogger } from "../src/logger";
import { LocalBus } from "../src/realtime/bus";
import { MODULES } from "../src/modules";
import { createServer, type ConveneServer } from "../src/server";
import { basic, startTestServer, type TestServer } from "./support/test-server";

/**
 * Two servers on one database whose buses are not connected: every lobby change made on
 * B is a bus event A never gets. A's subscribers must still see every change, in order,
 * repaired from the database when the next event shows the gap.
 */
let a: TestServer;
let b: ConveneServer;
let bUrl: string;
let bus: LocalBus;

beforeAll(async () => {
  a = await startTestServer();
  bus = new LocalBus();
  b = await createServer({ config: a.config, dataSource: a.database.dataSource, bus, log: createLogger("silent") }, MODULES);
  bUrl = `http://127.0.0.1:${(await b.listen(0, "127.0.0.1")).port}`;
});
afterAll(async () => {
  await b.close();
  await bus.close();
  await a.close();
});

async function subscriber(url: string) {
  const ws = new WebSocket(url.replace("http", "ws") + "/lobby_api");
  const inbox: any[] = [];
  ws.on("message", (data) => inbox.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  ws.send(JSON.stringify({ $type: "login", username: "admin", password: "admin" }));
  ws.send(JSON.stringify({ $type: "subscribe_tables" }));
  const waitFor = async (n: number) => {
    for (let i = 0; i < 400 && inbox.length < n; i++) await new Promise((r) => setTimeout(r, 25));
    return inbox.slice(0, n);
  };
  await waitFor(2);
  return { ws, inbox, waitFor };
}

const add = (url: string, name: string) =>
  fetch(`${url}/lobby_api/tables`, {
    method: "POST",
    headers: { authorization: basic("admin", "admin"), "content-type": "application/json" },
    body: JSON.stringify({ after_id: -1, table: { name, participants: 0 } }),
  }).then((r) => r.json() as Promise<any>);

it("repairs lobby changes whose bus events were lost, so a subscriber sees every version once, in order", async () => {
  const s = await subscriber(a.url);
  const [login, list] = s.inbox;
  expect(login.$type).toBe("login_successful");
  expect(list.$type).toBe("table_list");
  const lost1 = await add(bUrl, "lost 1");
  const lost2 = await add(bUrl, "lost 2");
  const seen = await add(a.url, "seen");
  expect([lost1.version, lost2.version, seen.version]).toEqual([list.version + 1, list.version + 2, list.version + 3]);
  const events = (await s.waitFor(5)).slice(2);
  expect(events).toEqual([lost1, lost2, seen]);
  // A fresh subscriber on B agrees with the database.
  const t = await subscriber(bUrl);
  expect(t.inbox[1]).toMatchObject({ version: seen.version, tables: [seen.table, lost2.table, lost1.table, ...list.tables] });
  s.ws.terminate();
  t.ws.terminate();
});
