import { createHash } from "node:crypto";
import fs from "node:fs";
import { randomUUID } from "node:crypto";
import type { Request, Response } from "express";
import { z } from "zod";
import multer from "multer";
import type { Api } from "../../http/api";
import type { Authenticators } from "../../http/auth-context";
import { DomainError, forbidden } from "../../core/errors";
import { ProblemSchema } from "../../http/schemas";
import { absoluteUrl } from "../../http/urls";
import { asUser } from "../accounts";
import { StreamQuery, UpdateVideoBody, UploadFields, UploadForm, VideoListQuery, VideoPageSchema, VideoParams, VideoSchema } from "./videos.schemas";
import type { VideosService } from "./videos.service";
import type { VideoEntity } from "./video.entity";
import { ifRangeMatches, noneMatch, parseRange } from "./videos.stream";

const tag = "Videos";
const VideoBytes = z.string().openapi({ format: "binary" });
const STREAM_HEADERS = {
  "Accept-Ranges": "bytes",
  ETag: "A strong ETag (If-None-Match gives 304; If-Range gives 206 only when it matches)",
  "Last-Modified": "When the upload completed",
  "Cross-Origin-Resource-Policy": "cross-origin, so a <video> on any origin plays it",
};
export interface VideoRouteOptions { publicUrl: string | null; maxUploadBytes: number; ttlSeconds: number; authenticators: Authenticators }

export function registerVideoRoutes(api: Api, videos: VideosService, o: VideoRouteOptions): void {
  api.tag(tag, "Upload, list, change and play videos (HTTP range requests, signed stream URLs).");
  const present = (req: Request, v: VideoEntity) => ({
    id: v.id, title: v.title, description: v.description, mime_type: v.mimeType, size: v.size,
    ...(v.duration !== null ? { duration: v.duration } : {}), uploader: v.uploader,
    created_at: v.createdAt.toISOString(), updated_at: v.updatedAt.toISOString(),
    stream_url: absoluteUrl(req, o.publicUrl, `/videos/${v.id}/stream?${videos.sign(v.id, o.ttlSeconds)}`),
  });
  const upload = multer({
    storage: multer.diskStorage({ destination: videos.tempDir, filename: (_req, _file, cb) => cb(null, `${randomUUID()}.part`) }),
    limits: { fileSize: o.maxUploadBytes, files: 1, fields: 10 },
  }).single("video");
  const receive = (req: Request, res: Response) => new Promise<void>((resolve, reject) => {
    upload(req, res, (error: unknown) => {
      if (!error) return resolve();
      if (req.file) fs.rm(req.file.path, { force: true }, () => {});
      const code = (error as { code?: string }).code;
      if (code === "LIMIT_FILE_SIZE") return reject(new DomainError(413, `The file is larger than ${o.maxUploadBytes} bytes.`));
      if (code?.startsWith("LIMIT_")) return reject(new DomainError(400, String((error as Error).message)));
      reject(new DomainError(400, "The multipart body is malformed or was cut off."));
    });
  });

  api.route(
    { method: "post", path: "/videos", operationId: "uploadVideo", summary: "Upload a video", tag, auth: "required",
      description: "multipart/form-data: file in `video`, `title` (1–200), `description?`.",
      rawBody: { contentType: "multipart/form-data", schema: UploadForm },
      responses: { 201: { description: "The video", schema: VideoSchema }, 400: "No file or title", 413: "Larger than MAX_UPLOAD_BYTES", 415: "Not a video" } },
    async ({ auth, req, res }) => {
      const user = asUser(auth);
      if (!req.is("multipart/form-data")) throw new DomainError(415, "The body must be multipart/form-data.");
      await receive(req, res);
      const file = req.file;
      const fields = UploadFields.safeParse(req.body ?? {});
      if (!file || !fields.success) {
        if (file) await fs.promises.rm(file.path, { force: true });
        throw new DomainError(400, !file ? "The `video` file is missing." : "The fields are invalid.", {
          errors: fields.success ? [] : fields.error.issues.map((i) => ({ field: ["body", ...i.path.map(String)].join("."), message: i.message })) });
      }
      const video = await videos.create({ id: user.id, name: user.name }, { tempPath: file.path, ...fields.data });
      res.status(201).location(absoluteUrl(req, o.publicUrl, `/videos/${video.id}`)).json(present(req, video));
    },
  );

  api.route(
    { method: "get", path: "/videos", operationId: "listVideos", summary: "Your videos", tag, auth: "required", query: VideoListQuery,
      responses: { 200: { description: "A page of videos, newest first", schema: VideoPageSchema } } },
    async ({ auth, query, req, res }) => {
      const page = await videos.list(asUser(auth).id, query.limit, query.cursor);
      res.json({ items: page.items.map((v) => present(req, v)), next_cursor: page.next_cursor });
    },
  );

  api.route(
    { method: "get", path: "/videos/:id", operationId: "getVideo", summary: "A video", tag, auth: "required", params: VideoParams,
      responses: { 200: { description: "The video (a fresh stream_url)", schema: VideoSchema }, 404: "Not yours or no such video" } },
    async ({ auth, params, req, res }) => { res.json(present(req, await videos.get(asUser(auth).id, params.id))); },
  );

  api.route(
    { method: "patch", path: "/videos/:id", operationId: "updateVideo", summary: "Change a video's title or description", tag, auth: "required", params: VideoParams, body: UpdateVideoBody,
      responses: { 200: { description: "The video", schema: VideoSchema }, 404: "Not yours or no such video" } },
    async ({ auth, params, body, req, res }) => { res.json(present(req, await videos.update(asUser(auth).id, params.id, body))); },
  );

  api.route(
    { method: "delete", path: "/videos/:id", operationId: "deleteVideo", summary: "Delete a video and its file", tag, auth: "required", params: VideoParams,
      responses: { 204: { description: "Deleted" }, 404: "Not yours or no such video" } },
    async ({ auth, params, res }) => { await videos.delete(asUser(auth).id, params.id); res.status(204).end(); },
  );

  api.route(
    { method: "get", path: "/videos/:id/stream", operationId: "streamVideo", summary: "Play a video (HEAD too)", tag, auth: "none", params: VideoParams, query: StreamQuery,
      description: "The owner's credentials, or the signed `stream_url`. Single ranges give 206; multi-range answers 200 with the whole file.",
      responses: {
        200: { description: "The whole file", schema: VideoBytes, contentType: "video/*", headers: STREAM_HEADERS },
        206: { description: "One range", schema: VideoBytes, contentType: "video/*", headers: { ...STREAM_HEADERS, "Content-Range": "bytes first-last/size" } },
        304: { description: "Not modified (If-None-Match matched the ETag)", headers: { ETag: "The strong ETag" } },
        401: "No credentials", 403: "Expired or tampered signature", 404: "Not yours",
        416: { description: "Unsatisfiable range (`Content-Range: bytes */size`)", schema: ProblemSchema, contentType: "application/problem+json", headers: { "Content-Range": "bytes */size" } } } },
    async ({ params, query, req, res }) => {
      let video: VideoEntity;
      if (query.sig !== undefined || query.expires !== undefined) {
        if (!query.sig || !query.expires || !videos.verify(params.id, query.expires, query.sig)) throw forbidden("The stream URL is expired or invalid.");
        video = await videos.locate(params.id);
      } else {
        const principal = await o.authenticators.authenticate({ authorization: req.headers.authorization, headers: req.headers });
        video = await videos.get(asUser(principal).id, params.id);
      }
      await sendFile(req, res, videos.filePath(video), video);
    },
  );
}

async function sendFile(req: Request, res: Response, file: string, video: VideoEntity) {
  const stat = await fs.promises.stat(file).catch(() => null);
  if (!stat) throw new DomainError(404, "The video's file is gone.");
  const etag = `"${createHash("sha256").update(`${stat.size}-${stat.mtimeMs}-${video.id}`).digest("base64url").slice(0, 27)}"`;
  res.setHeader("Cross-Origin-Resource-Policy", "cross-origin");
  res.setHeader("Cache-Control", "private, no-cache");
  res.setHeader("Accept-Ranges", "bytes");
  res.setHeader("ETag", etag);
  res.setHeader("Last-Modified", stat.mtime.toUTCString());
  res.setHeader("Content-Type", video.mimeType);
  if (noneMatch(req.get("if-none-match"), etag)) { res.status(304).end(); return; }
  const range = ifRangeMatches(req.get("if-range"), etag, stat.mtime) ? parseRange(req.headers.range, stat.size) : null;
  if (range === "unsatisfiable") {
    res.setHeader("Content-Range", `bytes */${stat.size}`);
    throw new DomainError(416, "The range is outside the file.");
  }
  const { start, end } = range ?? { start: 0, end: stat.size - 1 };
  res.status(range ? 206 : 200).setHeader("Content-Length", String(Math.max(0, end - start + 1)));
  if (range) res.setHeader("Content-Range", `bytes ${start}-${end}/${stat.size}`);
  if (req.method === "HEAD" || stat.size === 0) { res.end(); return; }
  await new Promise<void>((resolve) => {
    const stream = fs.createReadStream(file, { start, end, highWaterMark: 1024 * 1024 });
    stream.on("error", () => res.destroy());
    res.on("close", () => { stream.destroy(); resolve(); });
    stream.pipe(res);
  });
}
