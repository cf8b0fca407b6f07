import { openSse } from "./support/realtime";
import { basic, registerUser, startTestServer, uniqueName, type TestServer } from "./support/test-server";

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t.close();
});

const bearer = (token: string) => `Bearer ${token}`;

function expectProblem(res: { status: number; headers: Record<string, string>; body: any }, status: number) {
  expect(res.status).toBe(status);
  expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String), type: expect.any(String) });
}

describe("register", () => {
  it("creates a user, returns a token and the private view", async () => {
    const username = uniqueName("reg");
    const res = await t.http.post("/auth/register").send({ username, password: "secret123", mobile_token: "device-1" });
    expect(res.status).toBe(201);
    expect(res.body.user).toEqual({ username, created_at: expect.any(String), mobile_token: "device-1", user_type: "user" });
    expect(typeof res.body.token).toBe("string");
    expect(JSON.stringify(res.body)).not.toMatch(/\$2[aby]\$/);
    const me = await t.http.get("/users/me").set("Authorization", bearer(res.body.token));
    expect(me.status).toBe(200);
    expect(me.body.username).toBe(username);
  });

  it("refuses a name taken in any letter case with 409", async () => {
    const { username } = await registerUser(t, uniqueName("Case"));
    const res = await t.http.post("/auth/register").send({ username: username.toUpperCase(), password: "secret123" });
    expectProblem(res, 409);
  });

  it.each([
    [{ username: "ab", password: "secret123" }, "body.username"],
    [{ username: "has space", password: "secret123" }, "body.username"],
    [{ username: "x".repeat(33), password: "secret123" }, "body.username"],
    [{ username: "valid_name", password: "short" }, "body.password"],
    [{ username: "valid_name", password: "p".repeat(129) }, "body.password"],
    [{ username: "valid_name" }, "body.password"],
    [{ username: 12345, password: "secret123" }, "body.username"],
    [{ username: "valid_name", password: "secret123", role: "admin" }, "body"],
  ])("rejects %j with 400 naming the field", async (body, field) => {
    const res = await t.http.post("/auth/register").send(body);
    expectProblem(res, 400);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
  });

  it("refuses NUL characters and a JSON null body with 400, never 500", async () => {
    expectProblem(await t.http.post("/auth/login").send({ username: "a\u0000b", password: "secret123" }), 400);
    expectProblem(await t.http.post("/auth/register").send({ username: "nul_user", password: "secret\u0000123" }), 400);
    expectProblem(await t.http.get("/users/me").set("Authorization", basic("a\u0000b", "pw")), 401);
    expectProblem(await t.http.get("/users").query({ cursor: Buffer.from(JSON.stringify(["\u0000"])).toString("base64url") }), 400);
    expectProblem(await t.http.post("/auth/login").set("Content-Type", "application/json").send("null"), 400);
    // Half a surrogate pair would be stored as U+FFFD: refused instead.
    expectProblem(await t.http.post("/auth/register").send({ username: uniqueName("lone"), password: "secret123", mobile_token: "\ud800" }), 400);
  });

  it("counts every character of a long password (no 72-byte bcrypt truncation)", async () => {
    const password = "a".repeat(72) + "XYZ";
    const { username } = await registerUser(t, uniqueName("long"), password);
    expectProblem(await t.http.post("/auth/login").send({ username, password: "a".repeat(72) + "other" }), 401);
    expect((await t.http.post("/auth/login").send({ username, password })).status).toBe(200);
  });

  it("answers malformed JSON with 400, a wrong media type with 415, a huge body with 413", async () => {
    const malformed = await t.http.post("/auth/register").set("Content-Type", "application/json").send('{"username": ');
    expectProblem(malformed, 400);
    const text = await t.http.post("/auth/register").set("Content-Type", "text/plain").send("username=x");
    expectProblem(text, 415);
    const huge = await t.http.post("/auth/register").send({ username: "big_body", password: "x".repeat(200_000) });
    expectProblem(huge, 413);
  });
});

describe("login and logout", () => {
  it("signs in case-insensitively and returns a working token", async () => {
    const { username, password } = await registerUser(t, uniqueName("Login"));
    const res = await t.http.post("/auth/login").send({ username: username.toLowerCase(), password });
    expect(res.status).toBe(200);
    expect(res.body.user.username).toBe(username);
    const me = await t.http.get("/users/me").set("Authorization", bearer(res.body.token));
    expect(me.status).toBe(200);
  });

  it("gives the same 401 for an unknown user and a wrong password", async () => {
    const { username } = await registerUser(t);
    const wrong = await t.http.post("/auth/login").send({ username, password: "wrong password" });
    const unknown = await t.http.post("/auth/login").send({ username: "nobody_here", password: "wrong password" });
    expectProblem(wrong, 401);
    expectProblem(unknown, 401);
    expect(wrong.body).toEqual(unknown.body);
  });

  it("logout revokes that token only", async () => {
    const { username, password, token } = await registerUser(t);
    const other = (await t.http.post("/auth/login").send({ username, password })).body.token;
    const out = await t.http.post("/auth/logout").set("Authorization", bearer(token));
    expect(out.status).toBe(204);
    expectProblem(await t.http.get("/users/me").set("Authorization", bearer(token)), 401);
    expect((await t.http.get("/users/me").set("Authorization", bearer(other))).status).toBe(200);
  });

  it("logout with Basic credentials is a no-op 204", async () => {
    const { username, password } = await registerUser(t);
    const res = await t.http.post("/auth/logout").set("Authorization", basic(username, password));
    expect(res.status).toBe(204);
  });

  it("the default admin exists and signs in", async () => {
    const res = await t.http.post("/auth/login").send({ username: "admin", password: "admin" });
    expect(res.status).toBe(200);
    expect(res.body.user.user_type).toBe("admin");
  });
});

describe("authentication", () => {
  it("accepts HTTP Basic on authenticated routes", async () => {
    const { username, password } = await registerUser(t);
    const res = await t.http.get("/users/me").set("Authorization", basic(username, password));
    expect(res.status).toBe(200);
    expect(res.body.user_type).toBe("user");
    // Served from the verification cache the second time; still correct.
    expect((await t.http.get("/users/me").set("Authorization", basic(username, password))).status).toBe(200);
    expectProblem(await t.http.get("/users/me").set("Authorization", basic(username, "not the password")), 401);
  });

  it.each([
    undefined,
    "Bearer",
    "Bearer not.a.jwt",
    "Basic !!!",
    "Basic " + Buffer.from("nocolon").toString("base64"),
    "Digest abc",
  ])("refuses %p with 401 and WWW-Authenticate", async (header) => {
    const req = t.http.get("/users/me");
    if (header) req.set("Authorization", header);
    const res = await req;
    expectProblem(res, 401);
    expect(res.headers["www-authenticate"]).toMatch(/Bearer/);
    expect(res.headers["www-authenticate"]).toMatch(/Basic/);
  });

  it("accepts HTTP Basic with a 128-character password of astral characters", async () => {
    const password = "😀".repeat(128);
    const { username } = await registerUser(t, uniqueName("emoji"), password);
    expect((await t.http.get("/users/me").set("Authorization", basic(username, password))).status).toBe(200);
  });

  it("refuses a validly signed token whose claims name no session with 401, not 500", async () => {
    const jwt = await import("jsonwebtoken");
    const odd = jwt.sign({}, t.config.jwtSecret!, { algorithm: "HS256", subject: "not-a-uuid", jwtid: "nor-this", expiresIn: 60 });
    expectProblem(await t.http.get("/users/me").set("Authorization", bearer(odd)), 401);
  });

  it("refuses a token signed with another secret or algorithm", async () => {
    const jwt = await import("jsonwebtoken");
    const forged = jwt.sign({ sub: "x", jti: "y" }, "another secret that is long enough!!", { algorithm: "HS256" });
    expectProblem(await t.http.get("/users/me").set("Authorization", bearer(forged)), 401);
    const none = jwt.sign({ sub: "x", jti: "y" }, "", { algorithm: "none" });
    expectProblem(await t.http.get("/users/me").set("Authorization", bearer(none)), 401);
  });
});

describe("users", () => {
  it("lists users with keyset pagination and only public fields", async () => {
    for (let i = 0; i < 3; i++) await registerUser(t, uniqueName("list"));
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: any = await t.http.get("/users").query({ limit: 2, ...(cursor ? { cursor } : {}) });
      expect(res.status).toBe(200);
      for (const user of res.body.items) expect(Object.keys(user).sort()).toEqual(["created_at", "username"]);
      seen.push(...res.body.items.map((u: { username: string }) => u.username));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    const sorted = [...seen].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
    expect(seen).toEqual(sorted);
    expect(seen).toContain("admin");
  });

  it("rejects a bad limit or cursor with 400", async () => {
    expectProblem(await t.http.get("/users?limit=0"), 400);
    expectProblem(await t.http.get("/users?limit=201"), 400);
    expectProblem(await t.http.get("/users?limit=abc"), 400);
    expectProblem(await t.http.get("/users?cursor=garbage"), 400);
  });

  it("shows a user publicly, 404 for unknown", async () => {
    const { username } = await registerUser(t);
    const res = await t.http.get(`/users/${username.toUpperCase()}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ username, created_at: expect.any(String) });
    expectProblem(await t.http.get("/users/nobody_at_all"), 404);
    expectProblem(await t.http.get("/users/%20"), 404);
  });
});

describe("update", () => {
  it("sets and clears the mobile token", async () => {
    const { username, token } = await registerUser(t);
    const set = await t.http.patch(`/users/${username}`).set("Authorization", bearer(token)).send({ mobile_token: "abc" });
    expect(set.status).toBe(200);
    expect(set.body.mobile_token).toBe("abc");
    const cleared = await t.http.patch(`/users/${username}`).set("Authorization", bearer(token)).send({ mobile_token: null });
    expect(cleared.body.mobile_token).toBeNull();
    expect((await t.http.get("/users/me").set("Authorization", bearer(token))).body.mobile_token).toBeNull();
  });

  it("changes the password with current_password and ends the other sessions", async () => {
    const { username, password, token } = await registerUser(t);
    const other = (await t.http.post("/auth/login").send({ username, password })).body.token;
    expectProblem(await t.http.patch(`/users/${username}`).set("Authorization", bearer(token)).send({ password: "new password 1" }), 400);
    expectProblem(
      await t.http.patch(`/users/${username}`).set("Authorization", bearer(token)).send({ password: "new password 1", current_password: "wrong one" }),
      403,
    );
    const ok = await t.http.patch(`/users/${username}`).set("Authorization", bearer(token)).send({ password: "new password 1", current_password: password });
    expect(ok.status).toBe(200);
    expect((await t.http.get("/users/me").set("Authorization", bearer(token))).status).toBe(200);
    expectProblem(await t.http.get("/users/me").set("Authorization", bearer(other)), 401);
    expectProblem(await t.http.get("/users/me").set("Authorization", basic(username, password)), 401);
    expect((await t.http.get("/users/me").set("Authorization", basic(username, "new password 1"))).status).toBe(200);
    expectProblem(await t.http.post("/auth/login").send({ username, password }), 401);
  });

  it("forbids changing someone else, 404 for unknown", async () => {
    const alice = await registerUser(t);
    const bob = await registerUser(t);
    expectProblem(await t.http.patch(`/users/${bob.username}`).set("Authorization", bearer(alice.token)).send({ mobile_token: "x" }), 403);
    expectProblem(await t.http.patch(`/users/nobody_at_all`).set("Authorization", bearer(alice.token)).send({ mobile_token: "x" }), 404);
    expectProblem(await t.http.patch(`/users/${alice.username}`).set("Authorization", bearer(alice.token)).send({ password: "short", current_password: "x" }), 400);
  });
});

describe("delete", () => {
  it("deletes the account and ends its sessions", async () => {
    const { username, password, token } = await registerUser(t);
    const other = (await t.http.post("/auth/login").send({ username, password })).body.token;
    const res = await t.http.delete(`/users/${username}`).set("Authorization", bearer(token));
    expect(res.status).toBe(204);
    expectProblem(await t.http.get(`/users/${username}`), 404);
    expectProblem(await t.http.get("/users/me").set("Authorization", bearer(other)), 401);
    expectProblem(await t.http.get("/users/me").set("Authorization", basic(username, password)), 401);
    // The name is free again.
    expect((await t.http.post("/auth/register").send({ username, password })).status).toBe(201);
  });

  it("answers 404 for an unknown user and 401 without credentials", async () => {
    const { token } = await registerUser(t);
    expectProblem(await t.http.delete(`/users/nobody_at_all`).set("Authorization", bearer(token)), 404);
    expectProblem(await t.http.delete(`/users/nobody_at_all`), 401);
    expectProblem(await t.http.post("/auth/logout"), 401);
    expectProblem(await t.http.patch(`/users/nobody_at_all`).send({ mobile_token: "x" }), 401);
  });

  it("forbids deleting someone else and keeps the last admin", async () => {
    const alice = await registerUser(t);
    const bob = await registerUser(t);
    expectProblem(await t.http.delete(`/users/${bob.username}`).set("Authorization", bearer(alice.token)), 403);
    expectProblem(await t.http.delete(`/users/admin`).set("Authorization", basic("admin", "admin")), 409);
  });
});

describe("a user's conference rooms", () => {
  // Rooms are made straight in the database here: the rooms routes that create and join
  // them belong to the conference-rooms module.
  async function roomWith(name: string, usernames: string[], capacity = 5) {
    const db = t.database.dataSource;
    const guid = crypto.randomUUID();
    const ids = [];
    for (const username of usernames) ids.push((await db.query(`SELECT id FROM users WHERE username = $1`, [username]))[0].id);
    await db.query(`INSERT INTO rooms (guid, name, capacity, host_id) VALUES ($1, $2, $3, $4)`, [guid, name, capacity, ids[0]]);
    for (const id of ids) await db.query(`INSERT INTO room_participants (room_guid, user_id) VALUES ($1, $2)`, [guid, id]);
    return guid;
  }

  it("lists the rooms a user is in, paginated, 404 for an unknown user", async () => {
    const [ann, ben] = [await registerUser(t, uniqueName("ann")), await registerUser(t, uniqueName("ben"))];
    expect((await t.http.get(`/users/${ann.username}/rooms`)).body).toEqual({ items: [], next_cursor: null });
    const first = await roomWith("standup", [ann.username, ben.username], 3);
    const second = await roomWith("retro", [ben.username, ann.username]);
    const page1 = await t.http.get(`/users/${ann.username}/rooms`).query({ limit: 1 });
    expect(page1.status).toBe(200);
    expect(page1.body.items).toEqual([
      { guid: first, name: "standup", capacity: 3, host: ann.username, participants: [ann.username, ben.username], created_at: expect.any(String) },
    ]);
    const page2 = await t.http.get(`/users/${ann.username}/rooms`).query({ limit: 1, cursor: page1.body.next_cursor });
    expect(page2.body).toEqual({ items: [expect.objectContaining({ guid: second, host: ben.username, participants: [ben.username, ann.username] })], next_cursor: null });
    expectProblem(await t.http.get("/users/nobody_at_all/rooms"), 404);
    expectProblem(await t.http.get(`/users/${ann.username}/rooms`).query({ cursor: "garbage" }), 400);
  });

  it("takes a deleted user out of every room, passing on hosting and closing rooms left empty", async () => {
    const [cat, dan, eve] = [await registerUser(t, uniqueName("cat")), await registerUser(t, uniqueName("dan")), await registerUser(t, uniqueName("eve"))];
    const shared = await roomWith("shared", [cat.username, dan.username, eve.username]);
    const alone = await roomWith("alone", [cat.username]);
    expect((await t.http.delete(`/users/${cat.username}`).set("Authorization", bearer(cat.token))).status).toBe(204);
    const [room] = (await t.http.get(`/users/${dan.username}/rooms`)).body.items;
    expect(room).toMatchObject({ guid: shared, host: dan.username, participants: [dan.username, eve.username] });
    expect(await t.database.dataSource.query(`SELECT guid FROM rooms WHERE guid = $1`, [alone])).toEqual([]);
  });
});

describe("races", () => {
  it("keeps accepting a user's HTTP Basic credentials while their profile changes", async () => {
    // Real bcrypt cost and no cache, so the PATCH lands while the password is being checked.
    const slow = await startTestServer({ BCRYPT_ROUNDS: "10", BASIC_AUTH_CACHE_SECONDS: "0" });
    try {
      const user = await registerUser(slow);
      for (let i = 0; i < 3; i++) {
        const [viaBasic, patch] = await Promise.all([
          slow.http.get("/users/me").set("Authorization", basic(user.username, user.password)),
          new Promise((r) => setTimeout(r, 10)).then(() =>
            slow.http.patch(`/users/${user.username}`).set("Authorization", bearer(user.token)).send({ mobile_token: `device-${i}` }),
          ),
        ]);
        expect([viaBasic.status, patch.status]).toEqual([200, 200]);
      }
    } finally {
      await slow.close();
    }
  });

  it("answers requests racing an account's deletion with 4xx, never 500", async () => {
    const statuses = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const user = await registerUser(t, uniqueName("racer"));
      const requests = [
        ...Array.from({ length: 4 }, () => t.http.patch(`/users/${user.username}`).set("Authorization", bearer(user.token)).send({ mobile_token: "x" })),
        ...Array.from({ length: 3 }, () => t.http.post("/auth/login").send({ username: user.username, password: user.password })),
        t.http.delete(`/users/${user.username}`).set("Authorization", bearer(user.token)),
      ];
      for (const res of await Promise.all(requests)) statuses.add(res.status);
    }
    for (const status of statuses) expect([200, 204, 401, 404]).toContain(status);
  });
});

describe("token expiry", () => {
  it("refuses an expired token", async () => {
    const short = await startTestServer({ JWT_TTL_SECONDS: "1" });
    try {
      const { token } = await registerUser(short);
      expect((await short.http.get("/users/me").set("Authorization", bearer(token))).status).toBe(200);
      await new Promise((r) => setTimeout(r, 2100));
      expectProblem(await short.http.get("/users/me").set("Authorization", bearer(token)), 401);
    } finally {
      await short.close();
    }
  });
});

describe("rate limits", () => {
  it("limits login and register per client with 429 and Retry-After", async () => {
    const limited = await startTestServer({ RATE_LIMIT_AUTH_PER_MINUTE: "3" });
    try {
      for (let i = 0; i < 3; i++)
        expect((await limited.http.post("/auth/login").send({ username: "admin", password: "nope" })).status).toBe(401);
      const res = await limited.http.post("/auth/login").send({ username: "admin", password: "admin" });
      expectProblem(res, 429);
      expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
      // One budget: the wrong logins used it up for HTTP Basic too; even the right password
      // is refused, so a guess cannot be confirmed (test/password-budget.e2e.test.ts has the rest).
      expectProblem(await limited.http.get("/users/me").set("Authorization", basic("admin", "admin")), 429);
    } finally {
      await limited.close();
    }
  });

  it("limits a burst of parallel guesses like a sequence of them", async () => {
    const limited = await startTestServer({ RATE_LIMIT_AUTH_PER_MINUTE: "5" });
    try {
      const guesses = await Promise.all(
        Array.from({ length: 30 }, (_, i) => limited.http.get("/users/me").set("Authorization", basic("admin", `guess ${i}`))),
      );
      const statuses = guesses.map((res) => res.status);
      expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(5);
      expect(statuses.filter((status) => status !== 401 && status !== 429)).toEqual([]);
    } finally {
      await limited.close();
    }
  });

  it("counts wrong current_password guesses, never correct use of the API", async () => {
    const limited = await startTestServer({ RATE_LIMIT_AUTH_PER_MINUTE: "3" });
    try {
      const user = await registerUser(limited);
      const me = () => limited.http.get("/users/me").set("Authorization", bearer(user.token));
      // Event streams that the client closes before they end count for nothing.
      for (let i = 0; i < 6; i++) {
        const stream = openSse(`${limited.url}/chat/subscribe`, { Authorization: bearer(user.token) });
        await stream.ready;
        stream.close();
      }
      for (let i = 0; i < 6; i++) expect((await me()).status).toBe(200);
      for (let i = 0; i < 3; i++)
        expectProblem(
          await limited.http.patch(`/users/${user.username}`).set("Authorization", bearer(user.token)).send({ password: "new password 1", current_password: `guess ${i}` }),
          403,
        );
      expectProblem(
        await limited.http.patch(`/users/${user.username}`).set("Authorization", bearer(user.token)).send({ password: "new password 1", current_password: user.password }),
        429,
      );
    } finally {
      await limited.close();
    }
  });
});
