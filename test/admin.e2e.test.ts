import { basic, registerUser, startTestServer, type TestServer } from "./support/test-server";

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(() => t.close());

const admin = basic("admin", "admin");
const bearer = (token: string) => `Bearer ${token}`;

describe("admins administer accounts", () => {
  it("an admin sets user_type on another account and sees its role; the new admin can act as one", async () => {
    const alice = await registerUser(t);
    const res = await t.http.patch(`/users/${alice.username}`).set("Authorization", admin).send({ user_type: "admin" });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ username: alice.username, created_at: expect.any(String), user_type: "admin" });
    expect((await t.http.get("/users/me").set("Authorization", bearer(alice.token))).body.user_type).toBe("admin");
    const bob = await registerUser(t);
    expect((await t.http.delete(`/users/${bob.username}`).set("Authorization", bearer(alice.token))).status).toBe(204);
    expect((await t.http.get(`/users/${bob.username}`)).status).toBe(404);
    // Back to user, so the next test starts with one admin.
    expect((await t.http.patch(`/users/${alice.username}`).set("Authorization", admin).send({ user_type: "user" })).body.user_type).toBe("user");
  });

  it("a non-admin sending user_type gets 403, for itself too", async () => {
    const carol = await registerUser(t);
    const res = await t.http.patch(`/users/${carol.username}`).set("Authorization", bearer(carol.token)).send({ user_type: "admin" });
    expect(res.status).toBe(403);
    expect(res.headers["content-type"]).toMatch(/application\/problem\+json/);
    expect((await t.http.get("/users/me").set("Authorization", bearer(carol.token))).body.user_type).toBe("user");
  });

  it("an admin may not change another user's own fields, even beside user_type", async () => {
    const dave = await registerUser(t);
    expect((await t.http.patch(`/users/${dave.username}`).set("Authorization", admin).send({ mobile_token: "x" })).status).toBe(403);
    expect((await t.http.patch(`/users/${dave.username}`).set("Authorization", admin).send({ user_type: "admin", mobile_token: "x" })).status).toBe(403);
  });

  it("the last admin cannot demote or delete themself (409)", async () => {
    expect((await t.http.patch("/users/admin").set("Authorization", admin).send({ user_type: "user" })).status).toBe(409);
    expect((await t.http.delete("/users/admin").set("Authorization", admin)).status).toBe(409);
    expect((await t.http.get("/users/me").set("Authorization", admin)).body.user_type).toBe("admin");
  });
});
