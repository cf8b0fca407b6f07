import WebSocket from "ws";
import { basic, startTestServer, type TestServer } from "./support/test-server";

/** The lobby's login shares the per-address budget of wrong passwords with HTTP Basic. */
let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ RATE_LIMIT_AUTH_PER_MINUTE: "4" });
});
afterAll(async () => {
  await t.close();
});

async function lobbyClient() {
  const ws = new WebSocket(t.url.replace("http", "ws") + "/lobby_api");
  const inbox: any[] = [];
  ws.on("message", (data) => inbox.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const ask = async (message: object) => {
    ws.send(JSON.stringify(message));
    for (let i = 0; i < 200 && inbox.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    return inbox.shift();
  };
  return { ws, ask };
}

test("wrong lobby logins and wrong Basic passwords from one address end up refused, unchecked", async () => {
  const c = await lobbyClient();
  // A right password is forgiven: it never counts.
  for (let i = 0; i < 6; i++) expect(await c.ask({ $type: "login", username: "admin", password: "admin" })).toMatchObject({ $type: "login_successful" });
  expect((await t.http.get("/lobby_api/tables").set("Authorization", basic("admin", "wrong 1"))).status).toBe(401);
  expect((await t.http.get("/lobby_api/tables").set("Authorization", basic("admin", "wrong 2"))).status).toBe(401);
  for (let i = 0; i < 2; i++) expect(await c.ask({ $type: "login", username: "admin", password: `nope ${i}` })).toEqual({ $type: "login_failed" });
  // Four wrong passwords in the minute, over both doors: the next is refused unchecked, even when right.
  const refused = await c.ask({ $type: "login", username: "admin", password: "admin" });
  expect(refused).toMatchObject({ $type: "not_authenticated" });
  expect(refused.message).toMatch(/too many/i);
  expect((await t.http.get("/lobby_api/tables").set("Authorization", basic("admin", "wrong 3"))).status).toBe(429);
  // The connection stays open, and the earlier login stays.
  expect(await c.ask({ $type: "ping", seq: 1 })).toEqual({ $type: "pong", seq: 1 });
  expect(await c.ask({ $type: "subscribe_tables" })).toMatchObject({ $type: "table_list" });
  c.ws.terminate();
});
