import { createLogger } from "../src/logger";
import { LocalBus } from "../src/realtime/bus";
import { MODULES } from "../src/modules";
import { createServer, type ConveneServer } from "../src/server";
import { collect, connectSocket, emitWithAck, openSse } from "./support/realtime";
import { registerUser, startTestServer, type TestServer } from "./support/test-server";

/** A sample of the Prometheus text format: `name{label="value",...} value`. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: -?\\d+)?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/;
const COMMENT = new RegExp(`^# (?:HELP ${NAME} .*|TYPE ${NAME} (?:counter|gauge|histogram|summary|untyped))$`);

/** A strict reader of the Prometheus text exposition format (prom-client writes it, it has no parser): any line it does not know fails the test. */
function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || COMMENT.test(line)) continue;
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`not a Prometheus text line: ${line}`);
    const labels: Record<string, string> = {};
    let rest = match[2] ?? "";
    while (rest !== "") {
      const label = LABEL.exec(rest);
      if (!label) throw new Error(`bad labels in: ${line}`);
      labels[label[1]] = label[2].replace(/\\(.)/g, (_all, c: string) => (c === "n" ? "\n" : c));
      rest = rest.slice(label[0].length);
    }
    const value = Number(match[3].replace(/^\+Inf$/, "Infinity"));
    if (Number.isNaN(value) && match[3] !== "NaN") throw new Error(`bad value in: ${line}`);
    samples.push({ name: match[1], labels, value });
  }
  return samples;
}

/** The value of the sample with this name and (at least) these labels; undefined when absent. */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

type LogLine = Record<string, unknown>;
const logged: LogLine[] = [];
const destination = { write: (line: string) => void logged.push(JSON.parse(line) as LogLine) };

const LIMIT = 2000;
let t: TestServer;
// A second server on the same database whose bus reaches nobody: its posts are events `t` never gets, so `t` repairs them.
let b: ConveneServer;
let bUrl: string;
let bBus: LocalBus;

beforeAll(async () => {
  t = await startTestServer({ CLIENT_BUFFER_LIMIT_BYTES: String(LIMIT) }, undefined, createLogger("debug", destination));
  bBus = new LocalBus();
  b = await createServer({ config: t.config, dataSource: t.database.dataSource, bus: bBus, log: createLogger("silent") }, MODULES);
  bUrl = `http://127.0.0.1:${(await b.listen(0, "127.0.0.1")).port}`;
}, 120_000);
afterAll(async () => {
  await b.close();
  await bBus.close();
  await t.close();
});

async function scrape(): Promise<Sample[]> {
  const res = await t.http.get("/metrics");
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toMatch(/^text\/plain/);
  return parsePrometheus(res.text);
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A Socket.IO client over long-polling, spoken by hand so it can stop polling: whatever
 * the server sends it then stays queued in engine.io, as for a client that stopped reading.
 */
async function stalledPollingSubscriber(token: string, channelId: string): Promise<void> {
  const base = `${t.url}/socket.io/?EIO=4&transport=polling`;
  const open = await (await fetch(base)).text();
  const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
  const url = `${base}&sid=${sid}`;
  const send = async (packet: string) => expect((await fetch(url, { method: "POST", body: packet })).status).toBe(200);
  const poll = async () => (await (await fetch(url)).text()).split("\x1e");
  await send(`40${JSON.stringify({ token })}`);
  expect((await poll())[0]).toMatch(/^40/);
  await send(`421${JSON.stringify(["chat:subscribe", { channel_id: channelId }])}`);
  // The ack (`431[...]`) means it follows the channel; it polls no more after this.
  const answers = await poll();
  expect(answers.some((p) => p.startsWith("431[") && p.includes('"ok":true'))).toBe(true);
}

it("exposes HTTP durations by route pattern and counts messages posted, delivered, repaired and clients cut off", async () => {
  const user = await registerUser(t);
  const headers = { Authorization: `Bearer ${user.token}` };
  const channel = (await t.http.post("/chat/rooms").set(headers).send({ name: "metrics" })).body;
  const socket = await connectSocket(t.url, { token: user.token });
  const received = collect(socket, "chat:message");
  expect((await emitWithAck(socket, "chat:subscribe", { channel_id: channel.id })).ok).toBe(true);
  const stream = openSse(`${t.url}/chat/rooms/${channel.id}/subscribe`, headers);
  await stream.ready;

  const lost = await fetch(`${bUrl}/chat/rooms/${channel.id}/messages`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify({ body: "lost" }) });
  expect(lost.status).toBe(201);
  expect((await t.http.post(`/chat/rooms/${channel.id}/messages`).set(headers).send({ body: "seen" })).status).toBe(201);
  expect((await received.next(2)).map((m) => m.body)).toEqual(["lost", "seen"]);
  expect((await stream.waitFor(2)).length).toBe(2);
  expect((await t.http.get("/no/such/route")).status).toBe(404);

  // Each item is over half the buffer limit: the second one queued cuts the client off.
  const backlog = (await t.http.post("/chat/rooms").set(headers).send({ name: "metrics backlog" })).body;
  await stalledPollingSubscriber(user.token, backlog.id);
  for (let i = 0; i < 3; i += 1) expect((await t.http.post(`/chat/rooms/${backlog.id}/messages`).set(headers).send({ body: "b".repeat(LIMIT / 2 + 100) })).status).toBe(201);

  socket.close();
  // An event stream is timed until it ends.
  stream.close();
  const subscribed = { method: "GET", route: "/chat/rooms/:id/subscribe", status: "200" };
  let samples: Sample[] = [];
  await until(async () => {
    samples = await scrape();
    return (valueOf(samples, "convene_clients_cut_off_total", { door: "socket.io" }) ?? 0) > 0 && valueOf(samples, "http_request_duration_seconds_count", subscribed) === 1;
  }, "the cut-off and the event stream to be counted");

  const posted = { method: "POST", route: "/chat/rooms/:id/messages", status: "201" };
  expect(valueOf(samples, "http_request_duration_seconds_count", posted)).toBeGreaterThanOrEqual(4);
  expect(valueOf(samples, "http_request_duration_seconds_sum", posted)).toBeGreaterThan(0);
  expect(valueOf(samples, "http_request_duration_seconds_bucket", { ...posted, le: "+Inf" })).toBeGreaterThanOrEqual(4);
  expect(valueOf(samples, "http_request_duration_seconds_count", { method: "GET", route: "unmatched", status: "404" })).toBe(1);
  // Route labels are patterns, never raw URLs: no id of the channels appears in any.
  const routes = new Set(samples.filter((s) => s.name.startsWith("http_request_duration_seconds")).map((s) => s.labels.route));
  expect([...routes].filter((route) => route.includes(channel.id) || route.includes(backlog.id))).toEqual([]);

  expect(valueOf(samples, "convene_messages_posted_total", { kind: "channel" })).toBeGreaterThanOrEqual(4); // "seen" and the backlog; "lost" counts on the other server
  expect(valueOf(samples, "convene_messages_delivered_total", { door: "socket.io" })).toBeGreaterThanOrEqual(2);
  expect(valueOf(samples, "convene_messages_delivered_total", { door: "sse" })).toBeGreaterThanOrEqual(2);
  expect(valueOf(samples, "convene_messages_repaired_total")).toBeGreaterThanOrEqual(1);
}, 120_000);

it("logs one info line per request with method, route, status, ms, user and request id, and no headers", async () => {
  const user = await registerUser(t);
  const channel = (await t.http.post("/chat/rooms").set({ Authorization: `Bearer ${user.token}` }).send({ name: "logged" })).body;
  const res = await t.http.get(`/chat/rooms/${channel.id}`).set({ Authorization: `Bearer ${user.token}`, "X-Request-Id": "metrics-test-1" });
  expect(res.status).toBe(200);
  expect(res.headers["x-request-id"]).toBe("metrics-test-1");
  const probe = await t.http.get("/health").set({ "X-Request-Id": "metrics-test-probe" });
  expect(probe.status).toBe(200);

  const linesOf = (id: string) => logged.filter((line) => line.reqId === id);
  await until(async () => linesOf("metrics-test-1").length > 0 && linesOf("metrics-test-probe").length > 0, "the request lines");
  const lines = linesOf("metrics-test-1");
  expect(lines).toHaveLength(1);
  const [line] = lines;
  expect(line).toMatchObject({ level: 30, method: "GET", route: "/chat/rooms/:id", status: 200, user: user.username, msg: "request completed" });
  expect(typeof line.ms).toBe("number");
  expect(line).not.toHaveProperty("req");
  expect(line).not.toHaveProperty("res");
  const text = JSON.stringify(line).toLowerCase();
  for (const leak of ["headers", "authorization", user.token.toLowerCase(), "content-type", "user-agent"]) expect(text).not.toContain(leak);

  // Probes that succeed log at debug, not info.
  expect(linesOf("metrics-test-probe")).toEqual([expect.objectContaining({ level: 20, route: "/health", status: 200 })]);
}, 60_000);
