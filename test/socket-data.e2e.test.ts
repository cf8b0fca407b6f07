import { createLogger } from "../src/logger";
import { busOptions, createBus, type Bus } from "../src/realtime/bus";
import { MODULES } from "../src/modules";
import { createServer, type ConveneServer } from "../src/server";
import { connectSocket } from "./support/realtime";
import { registerUser, startTestServer, testDatabase, type TestServer } from "./support/test-server";

/**
 * With REDIS_URL, another process' fetchSockets() makes this process serialise its
 * sockets' data onto Redis. Nothing secret may travel: no account row, no password hash.
 * Only meaningful on Redis (the postgres project); one process has nothing to serialise.
 */
const withRedis = testDatabase === "postgres" && Boolean(process.env.REDIS_URL);
let a: TestServer;
let b: ConveneServer;
let bus: Bus;

beforeAll(async () => {
  a = await startTestServer();
  if (!a.config.redisUrl) return;
  bus = await createBus(busOptions(a.config), createLogger("silent"));
  b = await createServer({ config: a.config, dataSource: a.database.dataSource, bus, log: createLogger("silent") }, MODULES);
  await b.listen(0, "127.0.0.1");
});
afterAll(async () => {
  await b?.close();
  await bus?.close();
  await a.close();
});

(withRedis ? it : it.skip)("a socket's data fetched by another process carries the principal's name, not its account row", async () => {
  const user = await registerUser(a);
  const socket = await connectSocket(a.url, { token: user.token });
  try {
    const remote = (await b.io.fetchSockets()).find((s) => s.id === socket.id);
    expect(remote).toBeDefined();
    expect(remote!.data.principal).toMatchObject({ kind: "user", name: user.username });
    const serialised = JSON.stringify(remote!.data);
    expect(serialised).not.toContain("password");
    expect(serialised).not.toMatch(/\$2[aby]\$/);
    expect(remote!.data.principal).not.toHaveProperty("user");
  } finally {
    socket.close();
  }
});
