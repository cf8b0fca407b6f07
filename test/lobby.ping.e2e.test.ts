import { once } from "node:events";
import WebSocket from "ws";
import { basic, startTestServer, type TestServer } from "./support/test-server";

/**
 * `/lobby_api` finds dead connections by WebSocket ping, every LOBBY_PING_SECONDS (2 here:
 * short, yet long enough that a busy machine does not make the answering client miss one).
 */
let t: TestServer;
const open: WebSocket[] = [];
beforeAll(async () => {
  t = await startTestServer({ LOBBY_PING_SECONDS: "2" });
});
afterAll(async () => {
  for (const ws of open) ws.terminate();
  await t.close();
});

/** A logged-in, subscribed lobby client; `autoPong: false` makes one that never answers pings. */
async function subscriber(autoPong: boolean) {
  const ws = new WebSocket(t.url.replace("http", "ws") + "/lobby_api", { autoPong });
  open.push(ws);
  const inbox: any[] = [];
  let arrived: () => void = () => {};
  ws.on("message", (data) => {
    inbox.push(JSON.parse(data.toString()));
    arrived();
  });
  let pings = 0;
  ws.on("ping", () => (pings += 1));
  await once(ws, "open");
  const next = async (): Promise<any> => {
    while (inbox.length === 0) await new Promise<void>((resolve) => (arrived = resolve));
    return inbox.shift();
  };
  ws.send(JSON.stringify({ $type: "login", username: "admin", password: "admin" }));
  expect(await next()).toMatchObject({ $type: "login_successful" });
  ws.send(JSON.stringify({ $type: "subscribe_tables" }));
  expect(await next()).toMatchObject({ $type: "table_list" });
  return { ws, next, pings: () => pings };
}

test("a client that never answers pings is terminated; one that answers stays connected", async () => {
  const live = await subscriber(true);
  const silent = await subscriber(false);
  const livePingsAtStart = live.pings();
  let liveClosed = false;
  live.ws.on("close", () => (liveClosed = true));

  // Pinged, no pong: cut off without a close frame (1006 on the client).
  const [code] = await once(silent.ws, "close");
  expect(code).toBe(1006);
  expect(silent.pings()).toBeGreaterThanOrEqual(1);

  // Over the same period and two more pings, the answering client stays.
  const from = live.pings();
  while (live.pings() < from + 2) await once(live.ws, "ping");
  expect(live.pings()).toBeGreaterThan(livePingsAtStart);
  expect(liveClosed).toBe(false);
  expect(live.ws.readyState).toBe(WebSocket.OPEN);

  // ...and still gets the lobby's events and answers.
  const added = await t.http.post("/lobby_api/tables").set("Authorization", basic("admin", "admin")).send({ after_id: -1, table: { name: "still here", participants: 0 } });
  expect(added.status).toBe(201);
  expect(await live.next()).toMatchObject({ $type: "table_added", table: { name: "still here" } });
  live.ws.send(JSON.stringify({ $type: "ping", seq: 7 }));
  expect(await live.next()).toEqual({ $type: "pong", seq: 7 });
});
