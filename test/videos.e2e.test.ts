import fs from "node:fs";
import os from "node:os";
import http from "node:http";
import path from "node:path";
import { registerUser, startTestServer, type TestServer } from "./support/test-server";

let t: TestServer;
let dir: string;
let alice: { token: string };
let bob: { token: string };

const box = (type: string, body: Buffer) => {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length);
  head.write(type, 4, "latin1");
  return Buffer.concat([head, body]);
};
/** ftyp (brand `isom` is MP4, `qt  ` QuickTime) + moov/mvhd (timescale 1000, duration in ms; none without), padded. */
function tinyMp4(brand = "isom", durationMs: number | null = 2500): Buffer {
  const ftyp = box("ftyp", Buffer.concat([Buffer.from(brand), Buffer.alloc(4), Buffer.from(brand)]));
  const mvhd = Buffer.alloc(100);
  mvhd.writeUInt32BE(1000, 12);
  mvhd.writeUInt32BE(durationMs ?? 0, 16);
  mvhd.writeUInt32BE(0x00010000, 20);
  return Buffer.concat([ftyp, ...(durationMs !== null ? [box("moov", box("mvhd", mvhd))] : []), box("free", Buffer.alloc(1000, 7))]);
}

/** An EBML element: id, size as an 8-byte vint, body. */
const ebml = (id: string, body: Buffer) => {
  const size = Buffer.alloc(8);
  size[0] = 0x01;
  size.writeUIntBE(body.length, 2, 6);
  return Buffer.concat([Buffer.from(id, "hex"), size, body]);
};
const uint = (n: number, bytes: number) => { const b = Buffer.alloc(bytes); b.writeUIntBE(n, 0, bytes); return b; };
/** EBML header (DocType webm) + Segment/Info (TimecodeScale 1 ms, Duration in ms when given) + one VP8 track. */
function tinyWebm(durationMs: number | null): Buffer {
  const header = ebml("1a45dfa3", Buffer.concat([ebml("4286", uint(1, 1)), ebml("42f7", uint(1, 1)), ebml("42f2", uint(4, 1)), ebml("42f3", uint(8, 1)),
    ebml("4282", Buffer.from("webm")), ebml("4287", uint(4, 1)), ebml("4285", uint(2, 1))]));
  const duration = Buffer.alloc(8);
  duration.writeDoubleBE(durationMs ?? 0);
  const info = ebml("1549a966", Buffer.concat([ebml("2ad7b1", uint(1_000_000, 3)), ...(durationMs !== null ? [ebml("4489", duration)] : []),
    ebml("4d80", Buffer.from("test")), ebml("5741", Buffer.from("test"))]));
  const tracks = ebml("1654ae6b", ebml("ae", Buffer.concat([ebml("d7", uint(1, 1)), ebml("83", uint(1, 1)), ebml("86", Buffer.from("V_VP8"))])));
  return Buffer.concat([header, ebml("18538067", Buffer.concat([info, tracks]))]);
}

const auth = (u: { token: string }) => ({ Authorization: `Bearer ${u.token}` });
const upload = (file: Buffer, name = "clip.mp4", title: string | null = "My clip", user = alice) => {
  const r = t.http.post("/videos").set(auth(user));
  if (title !== null) r.field("title", title);
  return r.attach("video", file, name);
};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "convene-videos-"));
  t = await startTestServer({ UPLOADS_DIR: dir, MAX_UPLOAD_BYTES: "100000" });
  alice = await registerUser(t);
  bob = await registerUser(t);
});
afterAll(async () => {
  await t.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const files = () => fs.readdirSync(dir).filter((n) => n !== ".tmp");

describe("videos", () => {
  it("uploads, lists, gets, patches, refuses others, deletes", async () => {
    const mp4 = tinyMp4();
    const res = await upload(mp4);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ title: "My clip", description: null, mime_type: "video/mp4", size: mp4.length });
    const id = res.body.id as string;
    expect(files()).toHaveLength(1);
    const list = await t.http.get("/videos").set(auth(alice));
    expect(list.body.items.map((v: { id: string }) => v.id)).toEqual([id]);
    expect((await t.http.get("/videos").set(auth(bob))).body.items).toEqual([]);
    expect((await t.http.get(`/videos/${id}`).set(auth(bob))).status).toBe(404);
    expect((await t.http.get(`/videos/${id}/stream`).set(auth(bob))).status).toBe(404);
    const patched = await t.http.patch(`/videos/${id}`).set(auth(alice)).send({ description: "hi" });
    expect(patched.body).toMatchObject({ title: "My clip", description: "hi" });
    expect((await t.http.delete(`/videos/${id}`).set(auth(bob))).status).toBe(404);
    expect((await t.http.delete(`/videos/${id}`).set(auth(alice))).status).toBe(204);
    expect(files()).toHaveLength(0);
  });

  it("reads the type by content and the duration from MP4, QuickTime and WebM; no duration when unknown", async () => {
    const cases: [Buffer, string, string, number | undefined][] = [
      [tinyMp4("isom", 2500), "a.bin", "video/mp4", 2.5],
      [tinyMp4("qt  ", 4000), "a.mp4", "video/quicktime", 4],
      [tinyMp4("isom", null), "a.mp4", "video/mp4", undefined],
      [tinyWebm(3200), "a.mp4", "video/webm", 3.2],
      [tinyWebm(null), "a.webm", "video/webm", undefined],
    ];
    for (const [file, name, mime, duration] of cases) {
      const res = await upload(file, name);
      expect(res.status).toBe(201);
      expect(res.body.mime_type).toBe(mime);
      if (duration === undefined) expect(res.body).not.toHaveProperty("duration");
      else expect(res.body.duration).toBeCloseTo(duration, 3);
      expect((await t.http.get(`/videos/${res.body.id}`).set(auth(alice))).body.duration).toBe(res.body.duration);
      expect((await t.http.delete(`/videos/${res.body.id}`).set(auth(alice))).status).toBe(204);
    }
    // A text file whatever its name says.
    for (const name of ["notes.mp4", "notes.webm", "notes.mov"]) expect((await upload(Buffer.from("just some text, honestly\n".repeat(20)), name)).status).toBe(415);
    expect(files()).toHaveLength(0);
  });

  it("refuses a non-video (415), too big (413), no title or file (400), leaving no files", async () => {
    expect((await upload(Buffer.from("hello, not a video at all"), "fake.mp4")).status).toBe(415);
    expect((await upload(Buffer.alloc(200_000, 1))).status).toBe(413);
    const noTitle = await upload(tinyMp4(), "a.mp4", null);
    expect(noTitle.status).toBe(400);
    expect(noTitle.headers["content-type"]).toMatch(/problem\+json/);
    expect((await t.http.post("/videos").set(auth(alice)).field("title", "x")).status).toBe(400);
    expect(files()).toHaveLength(0);
    expect(fs.readdirSync(path.join(dir, ".tmp"))).toHaveLength(0);
  });

  it("streams ranges, HEAD, conditionals and signed URLs", async () => {
    const mp4 = tinyMp4();
    const v = (await upload(mp4)).body as { id: string; stream_url: string };
    const size = mp4.length;
    const s = `/videos/${v.id}/stream`;
    const whole = await t.http.get(s).set(auth(alice)).buffer(true).parse((r, cb) => { const c: Buffer[] = []; r.on("data", (d: Buffer) => c.push(d)); r.on("end", () => cb(null, Buffer.concat(c))); });
    expect(whole.status).toBe(200);
    expect(Buffer.compare(whole.body as Buffer, mp4)).toBe(0);
    expect(whole.headers["accept-ranges"]).toBe("bytes");
    expect(whole.headers["cross-origin-resource-policy"]).toBe("cross-origin");
    const etag = whole.headers.etag;
    const r1 = await t.http.get(s).set(auth(alice)).set("Range", "bytes=0-9");
    expect(r1.status).toBe(206);
    expect(r1.headers["content-range"]).toBe(`bytes 0-9/${size}`);
    expect((await t.http.get(s).set(auth(alice)).set("Range", "bytes=-10")).headers["content-range"]).toBe(`bytes ${size - 10}-${size - 1}/${size}`);
    expect((await t.http.get(s).set(auth(alice)).set("Range", "bytes=100-")).headers["content-range"]).toBe(`bytes 100-${size - 1}/${size}`);
    const bad = await t.http.get(s).set(auth(alice)).set("Range", `bytes=${size}-`);
    expect(bad.status).toBe(416);
    expect(bad.headers["content-range"]).toBe(`bytes */${size}`);
    expect((await t.http.get(s).set(auth(alice)).set("Range", "bytes=0-1,5-6")).status).toBe(200);
    const head = await t.http.head(s).set(auth(alice));
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(size));
    expect((await t.http.get(s).set(auth(alice)).set("If-None-Match", etag)).status).toBe(304);
    expect((await t.http.get(s).set(auth(alice)).set("Range", "bytes=0-9").set("If-Range", etag)).status).toBe(206);
    expect((await t.http.get(s).set(auth(alice)).set("Range", "bytes=0-9").set("If-Range", '"other"')).status).toBe(200);
    const signed = new URL(v.stream_url);
    expect((await t.http.get(signed.pathname + signed.search).set("Range", "bytes=0-3")).status).toBe(206);
    // Tampered: the first character of the signature changed (to one it is not).
    const sig = signed.searchParams.get("sig")!;
    const tampered = `${sig[0] === "A" ? "B" : "A"}${sig.slice(1)}`;
    expect((await t.http.get(signed.pathname + signed.search.replace(`sig=${sig}`, `sig=${tampered}`))).status).toBe(403);
    expect((await t.http.get(`${s}?expires=1&sig=${signed.searchParams.get("sig")}`)).status).toBe(403);
    expect((await t.http.get(s)).status).toBe(401);
  });

  it("an upload cut off half-way leaves no row and no file", async () => {
    const before = (await t.http.get("/videos").set(auth(alice))).body.items.length;
    const url = new URL(t.url);
    const req = http.request({ host: url.hostname, port: url.port, path: "/videos", method: "POST",
      headers: { ...auth(alice), "Content-Type": "multipart/form-data; boundary=XX", "Content-Length": "50000" } });
    req.on("error", () => {});
    req.write('--XX\r\nContent-Disposition: form-data; name="title"\r\n\r\ncut\r\n--XX\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n');
    req.write(tinyMp4());
    await new Promise((r) => setTimeout(r, 300));
    req.destroy();
    await new Promise((r) => setTimeout(r, 500));
    expect((await t.http.get("/videos").set(auth(alice))).body.items.length).toBe(before);
    expect(fs.readdirSync(path.join(dir, ".tmp"))).toHaveLength(0);
  });

  it("describes the multipart upload and the stream's answers in the OpenAPI document", async () => {
    const doc = (await t.http.get("/openapi.json")).body;
    const upload = doc.paths["/videos"].post.requestBody;
    expect(upload.required).toBe(true);
    const form = upload.content["multipart/form-data"].schema;
    const resolved = form.$ref ? doc.components.schemas[form.$ref.split("/").pop()] : form;
    expect(resolved.properties.video).toMatchObject({ type: "string", format: "binary" });
    expect(resolved.required).toEqual(expect.arrayContaining(["title", "video"]));
    const stream = doc.paths["/videos/{id}/stream"].get.responses;
    expect(Object.keys(stream)).toEqual(expect.arrayContaining(["200", "206", "304", "403", "404", "416"]));
    expect(stream["206"].headers).toHaveProperty("Content-Range");
    expect(stream["200"].headers).toHaveProperty(["Accept-Ranges"]);
    expect(stream["416"].headers).toHaveProperty("Content-Range");
  });
});
