import WebSocket from "ws";
import { basic, registerUser, startTestServer, type TestServer } from "./support/test-server";

/**
 * One budget of wrong passwords for every door (login, HTTP Basic, `current_password`, the
 * lobby's login): per address, and per account from addresses that have not signed in to
 * it lately. Addresses come from `X-Forwarded-For` (TRUST_PROXY), so each test has its own.
 */
const PER_ADDRESS = 20;
const PER_ACCOUNT = 10;
let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ RATE_LIMIT_AUTH_PER_MINUTE: String(PER_ADDRESS), RATE_LIMIT_AUTH_PER_ACCOUNT: String(PER_ACCOUNT), TRUST_PROXY: "1" });
});
afterAll(async () => {
  await t.close();
});

let addresses = 0;
/** An address no other request of this file uses. */
const newAddress = () => `198.51.100.${++addresses}`;

const login = (from: string, username: string, password: string) => t.http.post("/auth/login").set("X-Forwarded-For", from).send({ username, password });
const basicGet = (from: string, username: string, password: string) => t.http.get("/users/me").set("X-Forwarded-For", from).set("Authorization", basic(username, password));

function expectTooMany(res: { status: number; headers: Record<string, string>; body: { status?: number } }) {
  expect(res.status).toBe(429);
  expect(res.headers["content-type"]).toMatch(/application\/problem\+json/);
  expect(res.body.status).toBe(429);
  expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
}

async function lobbyClient(from: string) {
  const ws = new WebSocket(t.url.replace("http", "ws") + "/lobby_api", { headers: { "X-Forwarded-For": from } });
  const inbox: any[] = [];
  ws.on("message", (data) => inbox.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const ask = async (message: object) => {
    ws.send(JSON.stringify(message));
    for (let i = 0; i < 400 && inbox.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    return inbox.shift();
  };
  return { ws, ask };
}

describe("one budget per address", () => {
  it("counts login, Basic, current_password and the lobby's login together: the 21st wrong password is 429 by either door", async () => {
    // Accounts of their own, so the per-account limit is not what refuses.
    const users = await Promise.all(Array.from({ length: 4 }, () => registerUser(t)));
    const from = newAddress();
    // Right passwords never count.
    for (let i = 0; i < 5; i++) expect((await basicGet(from, users[0].username, users[0].password)).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await login(from, users[0].username, users[0].password)).status).toBe(200);
    // 20 wrong passwords, five per door, each door against its own account.
    for (let i = 0; i < 5; i++) expect((await login(from, users[0].username, `wrong ${i}`)).status).toBe(401);
    for (let i = 0; i < 5; i++) expect((await basicGet(from, users[1].username, `wrong ${i}`)).status).toBe(401);
    for (let i = 0; i < 5; i++)
      expect(
        (await t.http.patch(`/users/${users[2].username}`).set("X-Forwarded-For", from).set("Authorization", basic(users[2].username, users[2].password)).send({ password: "a new password", current_password: `wrong ${i}` }))
          .status,
      ).toBe(403);
    const lobby = await lobbyClient(from);
    for (let i = 0; i < 5; i++) expect(await lobby.ask({ $type: "login", username: users[3].username, password: `wrong ${i}` })).toEqual({ $type: "login_failed" });
    // The 21st, by any door, is refused unchecked, even with the right password.
    expectTooMany(await login(from, users[0].username, users[0].password));
    expectTooMany(await basicGet(from, users[1].username, "wrong again"));
    expectTooMany(await t.http.get("/lobby_api/tables").set("X-Forwarded-For", from).set("Authorization", basic(users[3].username, users[3].password)));
    const refused = await lobby.ask({ $type: "login", username: users[3].username, password: users[3].password });
    expect(refused).toMatchObject({ $type: "not_authenticated" });
    expect(refused.message).toMatch(/too many/i);
    lobby.ws.terminate();
    // Another address is not affected, and a bearer token presents no password.
    expect((await login(newAddress(), users[0].username, users[0].password)).status).toBe(200);
  });

  it("refuses the 21st whichever door the 20 came through (all at login, then Basic)", async () => {
    const user = await registerUser(t);
    const from = newAddress();
    // Against unknown names, so no account's own budget is touched.
    for (let i = 0; i < PER_ADDRESS; i++) expect((await login(from, `nobody_${i}`, "wrong")).status).toBe(401);
    expectTooMany(await basicGet(from, user.username, user.password));
    expectTooMany(await login(from, user.username, user.password));
  });
});

describe("a budget per account", () => {
  it("refuses guesses from many addresses once the account is over its limit, while the owner's address still signs in", async () => {
    const owner = await registerUser(t);
    const home = newAddress();
    expect((await login(home, owner.username, owner.password)).status).toBe(200);
    // One wrong password from each of PER_ACCOUNT new addresses, by login and Basic alternately.
    for (let i = 0; i < PER_ACCOUNT; i++) {
      const from = newAddress();
      const res = i % 2 === 0 ? await login(from, owner.username, `guess ${i}`) : await basicGet(from, owner.username, `guess ${i}`);
      expect(res.status).toBe(401);
    }
    // The next, from yet another address and by any door, is refused unchecked (even the right password).
    expectTooMany(await login(newAddress(), owner.username, "guess again"));
    expectTooMany(await login(newAddress(), owner.username.toUpperCase(), owner.password));
    expectTooMany(await basicGet(newAddress(), owner.username, owner.password));
    const lobby = await lobbyClient(newAddress());
    expect(await lobby.ask({ $type: "login", username: owner.username, password: owner.password })).toMatchObject({ $type: "not_authenticated" });
    lobby.ws.terminate();
    // The address the owner signed in from is not refused: it keeps only its own per-address budget.
    const back = await login(home, owner.username, owner.password);
    expect(back.status).toBe(200);
    expect((await basicGet(home, owner.username, owner.password)).status).toBe(200);
    expect((await login(home, owner.username, "a typo")).status).toBe(401);
    expect((await login(home, owner.username, owner.password)).status).toBe(200);
    // Other accounts are not affected.
    const other = await registerUser(t);
    expect((await login(newAddress(), other.username, other.password)).status).toBe(200);
  });

  it("a right password from a new address does not count against the account", async () => {
    const owner = await registerUser(t);
    for (let i = 0; i < PER_ACCOUNT + 5; i++) expect((await login(newAddress(), owner.username, owner.password)).status).toBe(200);
    for (let i = 0; i < PER_ACCOUNT; i++) expect((await login(newAddress(), owner.username, `guess ${i}`)).status).toBe(401);
    expectTooMany(await login(newAddress(), owner.username, "guess"));
  });
});
