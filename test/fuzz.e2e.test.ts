import fc from "fast-check";
import { basic, registerUser, startTestServer, type TestServer } from "./support/test-server";

/**
 * Sends generated malformed requests to every route the OpenAPI document lists and fails
 * on any 5xx or hang. Routes of new modules join automatically.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 3000);
const TIMEOUT_MS = 5000;

interface Operation {
  method: string;
  path: string;
  bodyFields: string[];
  queryFields: string[];
}

let t: TestServer;
let token: string;
let credentials: { username: string; password: string };
let operations: Operation[];

beforeAll(async () => {
  t = await startTestServer();
  const user = await registerUser(t, "fuzz_user", "fuzz password");
  token = user.token;
  credentials = user;
  const doc = (await t.http.get("/openapi.json")).body as {
    paths: Record<string, Record<string, { parameters?: { in: string; name: string }[]; requestBody?: any }>>;
  };
  operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => {
      const schema = op.requestBody?.content?.["application/json"]?.schema;
      const resolved = schema?.$ref ? (doc as any).components.schemas[schema.$ref.split("/").pop()] : schema;
      return {
        method,
        path,
        bodyFields: Object.keys(resolved?.properties ?? {}),
        queryFields: (op.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name),
      };
    }),
  );
});

afterAll(async () => {
  await t.close();
});

const oddString = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 50 }),
  fc.constantFrom("", " ", "null", "undefined", "-1", "0", "1e309", "NaN", "../../etc/passwd", "%", "\u0000", "'; DROP TABLE users; --", "00000000-0000-0000-0000-000000000000", "9223372036854775808", "a".repeat(5000)),
  fc.uuid(),
  fc.integer().map(String),
);

const jsonValue = fc.oneof(oddString, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 3 }));

function bodyFor(op: Operation) {
  const known = op.bodyFields.length
    ? fc.dictionary(fc.constantFrom(...op.bodyFields, "extra_field"), jsonValue, { maxKeys: op.bodyFields.length + 1 })
    : fc.constant({});
  return fc.oneof(
    known.map((v) => ({ raw: JSON.stringify(v), type: "application/json" })),
    jsonValue.map((v) => ({ raw: JSON.stringify(v), type: "application/json" })),
    fc.constantFrom('{"a":', "{", "[", "nul", '{"username": "x", }', "\u0000", "\"unterminated").map((raw) => ({ raw, type: "application/json" })),
    oddString.map((raw) => ({ raw, type: fc.sample(fc.constantFrom("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "application/json"), 1)[0] })),
    fc.constant(null),
  );
}

const authHeader = () =>
  fc.oneof(
    fc.constant(undefined),
    fc.constant(`Bearer ${token}`),
    fc.constant(basic(credentials.username, credentials.password)),
    oddString.map((s) => `Bearer ${s}`),
    oddString.map((s) => `Basic ${Buffer.from(s).toString("base64")}`),
    oddString.map((s) => `Basic ${s}`),
    oddString,
  );

const pathSegment = fc.oneof(
  oddString.map(encodeURIComponent),
  fc.constantFrom("%E0%A4%A", "%", "%zz", "..", "fuzz_user", "admin", "me"),
);

function requestFor(op: Operation) {
  return fc.record({
    segments: fc.array(pathSegment, { minLength: 4, maxLength: 4 }),
    query: fc.dictionary(fc.constantFrom(...op.queryFields, "limit", "cursor", "after", "before", "x"), oddString, { maxKeys: 3 }),
    body: bodyFor(op),
    auth: authHeader(),
  });
}

async function send(op: Operation, input: { segments: string[]; query: Record<string, string>; body: { raw: string; type: string } | null; auth?: string }) {
  let i = 0;
  const path = op.path.replace(/\{[^}]+\}/g, () => input.segments[i++ % input.segments.length]);
  const search = new URLSearchParams(input.query).toString();
  const headers: Record<string, string> = {};
  if (input.auth !== undefined) headers.authorization = input.auth.replace(/[\r\n\u0000-\u001f\u007f-\uffff]/g, "");
  if (input.body && op.method !== "get") headers["content-type"] = input.body.type;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  try {
    const res = await fetch(`${t.url}${path}${search ? `?${search}` : ""}`, {
      method: op.method.toUpperCase(),
      headers,
      body: input.body && op.method !== "get" ? input.body.raw : undefined,
      signal: controller.signal,
    });
    // Streams (SSE, video) answer headers and go on; the status is what matters.
    if (res.headers.get("content-type")?.startsWith("text/event-stream")) controller.abort();
    else await res.arrayBuffer();
    return res.status;
  } catch (error) {
    if (controller.signal.aborted && (error as Error).name === "AbortError") {
      throw new Error(`${op.method.toUpperCase()} ${path} hung for ${TIMEOUT_MS} ms`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

it(`never answers 5xx nor hangs, over ${RUNS} generated requests to every route`, async () => {
  expect(operations.length).toBeGreaterThan(5);
  const perOperation = Math.max(20, Math.ceil(RUNS / operations.length));
  for (const op of operations) {
    // A fresh valid token per route, since /auth/logout or a password change may end the last one.
    token = (await t.http.post("/auth/login").send({ username: credentials.username, password: credentials.password })).body.token;
    await fc.assert(
      fc.asyncProperty(requestFor(op), async (input) => {
        const status = await send(op, input);
        if (status >= 500) throw new Error(`${op.method.toUpperCase()} ${op.path} answered ${status}`);
      }),
      { numRuns: perOperation },
    );
  }
});
