import WebSocket from "ws";
import { collect, connectSocket } from "./support/realtime";
import { basic, registerUser, startTestServer, type TestServer } from "./support/test-server";

let t: TestServer;
let user: { username: string; password: string; token: string };
const open: WebSocket[] = [];
const ADMIN = basic("admin", "admin");

beforeAll(async () => {
  t = await startTestServer();
  user = await registerUser(t);
});
afterEach(() => {
  for (const ws of open.splice(0)) ws.terminate();
});
afterAll(async () => {
  await t.close();
});

/** A lobby client: `next()` is the next message the server sent. */
class Client {
  readonly messages: any[] = [];
  private waiters: Array<() => void> = [];
  closed: number | null = null;
  constructor(readonly ws: WebSocket) {
    ws.on("message", (data, isBinary) => {
      expect(isBinary).toBe(false);
      this.messages.push(JSON.parse(data.toString()));
      this.waiters.splice(0).forEach((w) => w());
    });
    ws.on("close", (code) => {
      this.closed = code;
      this.waiters.splice(0).forEach((w) => w());
    });
  }
  static async open(): Promise<Client> {
    const ws = new WebSocket(t.url.replace("http", "ws") + "/lobby_api");
    open.push(ws);
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    return new Client(ws);
  }
  static async login(username = "admin", password = "admin"): Promise<Client> {
    const c = await Client.open();
    expect(await c.ask({ $type: "login", username, password })).toMatchObject({ $type: "login_successful" });
    return c;
  }
  send(message: unknown, binary = false) {
    const text = typeof message === "string" ? message : JSON.stringify(message);
    this.ws.send(binary ? Buffer.from(text) : text, { binary });
  }
  async next(timeoutMs = 5000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length === 0) {
      if (this.closed !== null) throw new Error(`closed ${this.closed}`);
      if (Date.now() > deadline) throw new Error("no message");
      await new Promise<void>((resolve) => {
        setTimeout(resolve, 50);
        this.waiters.push(resolve);
      });
    }
    return this.messages.shift();
  }
  async ask(message: unknown, binary = false): Promise<any> {
    this.send(message, binary);
    return this.next();
  }
  async waitClosed(): Promise<number> {
    for (let i = 0; i < 100 && this.closed === null; i++) await new Promise((r) => setTimeout(r, 50));
    return this.closed ?? -1;
  }
}

const table = (name: string, participants = 0) => ({ name, participants });

test("health, ping before login, errors before login", async () => {
  expect((await t.http.get("/lobby_api/health")).status).toBe(200);
  const c = await Client.open();
  expect(await c.ask({ $type: "ping", seq: 7 })).toEqual({ $type: "pong", seq: 7 });
  expect(await c.ask({ $type: "subscribe_tables" })).toEqual({ $type: "not_authenticated" });
  expect(await c.ask({ $type: "add_table", after_id: -1, table: table("x") })).toEqual({ $type: "not_authenticated" });
  expect(await c.ask("{not json")).toEqual({ $type: "invalid_message" });
  expect(await c.ask({ $type: "dance" })).toEqual({ $type: "invalid_message" });
  expect(await c.ask({ $type: "login", username: "admin", password: "wrong" })).toEqual({ $type: "login_failed" });
  expect(await c.ask({ $type: "login", username: "nobody_here", password: "x" })).toEqual({ $type: "login_failed" });
  expect(await c.ask({ $type: "login", username: "admin", password: "admin" })).toEqual({ $type: "login_successful", user_type: "admin" });
  const u = await Client.open();
  expect(await u.ask({ $type: "login", username: user.username, password: user.password }, true)).toEqual({ $type: "login_successful", user_type: "user" });
  expect(await u.ask({ $type: "add_table", after_id: -1, table: table("x") })).toEqual({ $type: "not_authorized" });
  expect(await u.ask({ $type: "update_table", table: { id: 1, ...table("x") } })).toEqual({ $type: "not_authorized" });
  expect(await u.ask({ $type: "remove_table", id: 1 })).toEqual({ $type: "not_authorized" });
  expect(await u.ask({ $type: "ping", seq: 1 }, true)).toEqual({ $type: "pong", seq: 1 });
});

test("every command, its failures, and a subscriber sees each change in order", async () => {
  const admin = await Client.login();
  const watcher = await Client.login(user.username, user.password);
  const list = await watcher.ask({ $type: "subscribe_tables" });
  expect(list).toMatchObject({ $type: "table_list", tables: [] });
  const v = list.version as number;
  const a = await admin.ask({ $type: "add_table", after_id: -1, table: table("A", 2) });
  expect(a).toMatchObject({ $type: "table_added", after_id: -1, table: { name: "A", participants: 2 }, version: v + 1 });
  const idA = a.table.id as number;
  expect(await admin.ask({ $type: "add_table", after_id: idA, table: { id: 500, ...table("C") } })).toMatchObject({ table: { id: 500 }, version: v + 2 });
  expect(await admin.ask({ $type: "add_table", after_id: idA, table: { id: 77, ...table("B") } }, true)).toMatchObject({ after_id: idA, version: v + 3 });
  expect(await admin.ask({ $type: "add_table", after_id: 9999, table: table("D") })).toEqual({ $type: "addition_failed", after_id: 9999 });
  expect(await admin.ask({ $type: "add_table", after_id: -1, table: { id: 77, ...table("D") } })).toEqual({ $type: "addition_failed", after_id: -1 });
  expect(await admin.ask({ $type: "add_table", after_id: -1, table: { id: -3, ...table("D") } })).toEqual({ $type: "addition_failed", after_id: -1 });
  expect(await admin.ask({ $type: "add_table", after_id: -1, table: { name: "", participants: 0 } })).toEqual({ $type: "invalid_message" });
  expect(await admin.ask({ $type: "update_table", table: { id: 77, name: "B2", participants: 4 } })).toEqual({
    $type: "table_updated", table: { id: 77, name: "B2", participants: 4 }, version: v + 4,
  });
  expect(await admin.ask({ $type: "update_table", table: { id: 12345, ...table("x") } })).toEqual({ $type: "update_failed", id: 12345 });
  expect(await admin.ask({ $type: "remove_table", id: 500 })).toEqual({ $type: "table_removed", id: 500, version: v + 5 });
  expect(await admin.ask({ $type: "remove_table", id: 500 })).toEqual({ $type: "removal_failed", id: 500 });
  const events = [];
  for (let i = 0; i < 5; i++) events.push(await watcher.next());
  expect(events.map((e) => [e.$type, e.version])).toEqual([
    ["table_added", v + 1], ["table_added", v + 2], ["table_added", v + 3], ["table_updated", v + 4], ["table_removed", v + 5],
  ]);
  const again = await admin.ask({ $type: "subscribe_tables" });
  expect(again.tables).toEqual([{ id: idA, name: "A", participants: 2 }, { id: 77, name: "B2", participants: 4 }]);
  expect(again.version).toBe(v + 5);
  // A subscribed changer gets the event once, from the stream.
  await admin.ask({ $type: "remove_table", id: 77 }).then((e) => expect(e).toMatchObject({ $type: "table_removed", id: 77 }));
  expect(await admin.ask({ $type: "ping", seq: 2 })).toEqual({ $type: "pong", seq: 2 });
  watcher.send({ $type: "unsubscribe_tables" });
  await watcher.next();
  expect(await watcher.ask({ $type: "ping", seq: 3 })).toEqual({ $type: "pong", seq: 3 });
  await admin.ask({ $type: "remove_table", id: idA });
  expect(await watcher.ask({ $type: "ping", seq: 4 })).toEqual({ $type: "pong", seq: 4 });
});

test("frame limits: 64 KiB invalid, 1 MiB closes 1009, 51 invalid frames close 1008", async () => {
  const c = await Client.open();
  expect(await c.ask(JSON.stringify({ $type: "ping", seq: "x".repeat(70 * 1024) }))).toEqual({ $type: "invalid_message" });
  expect(await c.ask(Buffer.from([0xff, 0xfe]).toString("latin1"), true)).toEqual({ $type: "invalid_message" });
  c.send("x".repeat(1024 * 1024 + 10));
  expect(await c.waitClosed()).toBe(1009);
  const d = await Client.open();
  for (let i = 0; i < 51; i++) d.send("nope");
  expect(await d.waitClosed()).toBe(1008);
});

test("REST: auth, status codes, and changes reach WebSocket subscribers", async () => {
  const watcher = await Client.login();
  const { version } = await watcher.ask({ $type: "subscribe_tables" });
  const none = await t.http.get("/lobby_api/tables");
  expect(none.status).toBe(401);
  expect(none.headers["www-authenticate"]).toMatch(/Basic/);
  expect((await t.http.get("/lobby_api/tables").set("Authorization", `Bearer ${user.token}`)).body).toMatchObject({ $type: "table_list", version });
  const denied = await t.http.post("/lobby_api/tables").set("Authorization", basic(user.username, user.password)).send({ after_id: -1, table: table("R") });
  expect(denied.status).toBe(403);
  expect(denied.body).toEqual({ $type: "not_authorized" });
  const added = await t.http.post("/lobby_api/tables").set("Authorization", ADMIN).send({ after_id: -1, table: table("R", 1) });
  expect(added.status).toBe(201);
  expect(added.body).toMatchObject({ $type: "table_added", version: version + 1 });
  const id = added.body.table.id;
  expect(await watcher.next()).toEqual(added.body);
  const bad = await t.http.post("/lobby_api/tables").set("Authorization", ADMIN).send({ after_id: -1 });
  expect([bad.status, bad.body]).toEqual([400, { $type: "invalid_message" }]);
  const taken = await t.http.post("/lobby_api/tables").set("Authorization", ADMIN).send({ after_id: 424242, table: table("R") });
  expect([taken.status, taken.body]).toEqual([409, { $type: "addition_failed", after_id: 424242 }]);
  const put = await t.http.put(`/lobby_api/tables/${id}`).set("Authorization", ADMIN).send({ table: table("R2", 3) });
  expect([put.status, put.body]).toEqual([200, { $type: "table_updated", table: { id, name: "R2", participants: 3 }, version: version + 2 }]);
  expect(await watcher.next()).toEqual(put.body);
  const missing = await t.http.put(`/lobby_api/tables/999999`).set("Authorization", ADMIN).send({ table: table("R2") });
  expect([missing.status, missing.body]).toEqual([404, { $type: "update_failed", id: 999999 }]);
  expect((await t.http.put(`/lobby_api/tables/abc`).set("Authorization", ADMIN).send({ table: table("R2") })).status).toBe(400);
  const del = await t.http.delete(`/lobby_api/tables/${id}`).set("Authorization", ADMIN);
  expect([del.status, del.body]).toEqual([200, { $type: "table_removed", id, version: version + 3 }]);
  expect(await watcher.next()).toEqual(del.body);
  const gone = await t.http.delete(`/lobby_api/tables/${id}`).set("Authorization", ADMIN);
  expect([gone.status, gone.body]).toEqual([404, { $type: "removal_failed", id }]);
});

test("Socket.IO face: signed in as the token's user", async () => {
  const second = await registerUser(t);
  await t.database.dataSource.query(`UPDATE users SET user_type = 'admin' WHERE username = $1`, [second.username]);
  const socket = await connectSocket(t.url, { token: second.token });
  const lobby = collect(socket, "lobby");
  socket.emit("lobby", { $type: "subscribe_tables" });
  socket.emit("lobby", { $type: "add_table", after_id: -1, table: table("S") });
  socket.emit("lobby", { $type: "bogus" });
  const [list, added, invalid] = await lobby.next(3);
  expect(list.$type).toBe("table_list");
  expect(added).toMatchObject({ $type: "table_added", version: list.version + 1 });
  expect(invalid).toEqual({ $type: "invalid_message" });
  const plain = await connectSocket(t.url, { token: user.token });
  const answers = collect(plain, "lobby");
  plain.emit("lobby", { $type: "remove_table", id: added.table.id });
  expect((await answers.next(1))[0]).toEqual({ $type: "not_authorized" });
  socket.close();
  plain.close();
});

test("a login follows its account: demotion takes admin rights at once, promotion gives them back, password change and deletion close it", async () => {
  const other = await registerUser(t);
  expect((await t.http.patch(`/users/${other.username}`).set("Authorization", ADMIN).send({ user_type: "admin" })).status).toBe(200);
  const c = await Client.login(other.username, other.password);
  const added = await c.ask({ $type: "add_table", after_id: -1, table: table("mine") });
  expect(added.$type).toBe("table_added");
  expect((await t.http.patch(`/users/${other.username}`).set("Authorization", ADMIN).send({ user_type: "user" })).status).toBe(200);
  expect(await c.ask({ $type: "remove_table", id: added.table.id })).toEqual({ $type: "not_authorized" });
  expect(await c.ask({ $type: "subscribe_tables" })).toMatchObject({ $type: "table_list" });
  expect((await t.http.patch(`/users/${other.username}`).set("Authorization", ADMIN).send({ user_type: "admin" })).status).toBe(200);
  // The type is read again on the change event; give the read a moment.
  await new Promise((r) => setTimeout(r, 200));
  expect(await c.ask({ $type: "remove_table", id: added.table.id })).toMatchObject({ $type: "table_removed" });

  const changed = await t.http
    .patch(`/users/${other.username}`)
    .set("Authorization", `Bearer ${other.token}`)
    .send({ password: "a new password", current_password: other.password });
  expect(changed.status).toBe(200);
  expect(await c.waitClosed()).toBe(1008);

  const again = await Client.login(other.username, "a new password");
  expect((await t.http.patch(`/users/${other.username}`).set("Authorization", ADMIN).send({ user_type: "user" })).status).toBe(200);
  expect((await t.http.delete(`/users/${other.username}`).set("Authorization", ADMIN)).status).toBe(204);
  expect(await again.waitClosed()).toBe(1008);
  const gone = await Client.open();
  expect(await gone.ask({ $type: "login", username: other.username, password: "a new password" })).toEqual({ $type: "login_failed" });
});
