import { createLogger } from "../src/logger";
import { LocalBus } from "../src/realtime/bus";
import { MODULES } from "../src/modules";
import { createServer, type ConveneServer } from "../src/server";
import { collect, connectSocket, emitWithAck, openSse } from "./support/realtime";
import { registerUser, startTestServer, type TestServer } from "./support/test-server";

/**
 * Two servers on one database whose buses are not connected: every event of one is
 * "lost" for the other. The relay must still deliver everything, in order, repairing
 * from the database when the next event shows a gap.
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

it("repairs lost events from the database, so subscribers miss nothing and see one order", async () => {
  const user = await registerUser(a);
  const headers = { Authorization: `Bearer ${user.token}` };
  const channel = (await a.http.post("/chat/rooms").set(headers).send({ name: "gaps" })).body;
  const stream = openSse(`${a.url}/chat/rooms/${channel.id}/subscribe`, headers);
  await stream.ready;
  const socket = await connectSocket(a.url, { token: user.token });
  const received = collect(socket, "chat:message");
  expect((await emitWithAck(socket, "chat:subscribe", { channel_id: channel.id })).ok).toBe(true);

  const postOn = async (url: string, body: string) =>
    (await fetch(`${url}/chat/rooms/${channel.id}/messages`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify({ body }) }).then((r) => r.json())) as { id: string };

  const lost1 = await postOn(bUrl, "lost 1");
  const lost2 = await postOn(bUrl, "lost 2");
  const seen = await postOn(a.url, "seen");
  const expected = [lost1.id, lost2.id, seen.id];
  expect((await stream.waitFor(3)).map((e) => e.id)).toEqual(expected);
  expect((await received.next(3)).map((m) => m.id)).toEqual(expected);
  socket.close();
  stream.close();
});
