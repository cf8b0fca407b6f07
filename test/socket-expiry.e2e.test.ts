import { connectSocket } from "./support/realtime";
import { registerUser, startTestServer, type TestServer } from "./support/test-server";

/** A socket lives as long as its bearer token: one sweep a second ends those that expired. */
let t: TestServer;

beforeAll(async () => {
  t = await startTestServer({ JWT_TTL_SECONDS: "3" });
});
afterAll(async () => {
  await t.close();
});

it("disconnects a socket when its token expires, and only then", async () => {
  const user = await registerUser(t);
  const issued = Date.now();
  const socket = await connectSocket(t.url, { token: user.token });
  try {
    const reason = await new Promise<string>((resolve) => socket.once("disconnect", resolve));
    const after = Date.now() - issued;
    // The token's exp is whole seconds (2-3 s after registering, which came first); the sweep runs every second.
    expect(after).toBeGreaterThanOrEqual(1000);
    expect(after).toBeLessThan(6000);
    expect(reason).toBe("io server disconnect");
  } finally {
    socket.close();
  }
}, 20_000);
