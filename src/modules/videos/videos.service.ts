import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { LRUCache } from "lru-cache";
import type { DataSource } from "typeorm";
import { DomainError, notFound } from "../../core/errors";
import { decodeCursor, encodeCursor, toPage, type Page } from "../../core/pagination";
import type { UserDeletedHook } from "../../core/module";
import { VideoEntity } from "./video.entity";

export interface Upload { tempPath: string; title: string; description?: string }
export interface Owner { id: string; name: string }

/** The advisory lock key of the start-up sweep (uploads take it shared). */
const SWEEP_LOCK = 7630006;
const VIDEO_MIME = /^video\/|^application\/(x-matroska|webm|quicktime)$/;

/** Personal videos: rows in the database, files in UPLOADS_DIR. Never sees req/res. */
export class VideosService {
  /**
   * Videos looked up for signed stream URLs, so seeking does not cost a query per range.
   * Safe to keep: a file name is never reused and the stream stats the file every time,
   * so a video deleted (by any process) is 404 as soon as its file is gone.
   */
  private readonly located = new LRUCache<string, VideoEntity>({ max: 10_000, ttl: 60_000 });

  constructor(private readonly dataSource: DataSource, readonly uploadsDir: string, private readonly secret: string) {}

  /** A video by id for a signed stream URL (the signature already proved access). */
  async locate(id: string): Promise<VideoEntity> {
    const cached = this.located.get(id);
    if (cached) return cached;
    const video = await this.get(null, id);
    this.located.set(id, video);
    return video;
  }

  get tempDir() { return path.join(this.uploadsDir, ".tmp"); }
  filePath(video: VideoEntity) { return path.join(this.uploadsDir, video.fileName); }

  /** Checks the temp file by content, moves it into place and records it; the temp file is gone whatever happens. */
  async create(owner: Owner, upload: Upload): Promise<VideoEntity> {
    try {
      const { fileTypeFromFile } = await import("file-type");
      const type = await fileTypeFromFile(upload.tempPath);
      if (!type || !VIDEO_MIME.test(type.mime)) throw new DomainError(415, "The file is not a video (checked by its content).");
      const duration = await probeDuration(upload.tempPath, type.mime);
      const id = randomUUID();
      const fileName = `${id}.${type.ext}`;
      const size = (await fs.promises.stat(upload.tempPath)).size;
      const now = new Date();
      const video = this.dataSource.getRepository(VideoEntity).create({
        id, ownerId: owner.id, uploader: owner.name, title: upload.title, description: upload.description ?? null,
        mimeType: type.mime, size, duration, fileName, createdAt: now, updatedAt: now,
      });
      // Rename and insert under the shared side of the sweep's lock: a sweep in another
      // process must not see the file before its row exists.
      await this.dataSource.transaction(async (manager) => {
        await manager.query(`SELECT pg_advisory_xact_lock_shared($1)`, [SWEEP_LOCK]);
        await fs.promises.rename(upload.tempPath, path.join(this.uploadsDir, fileName));
        try {
          await manager.insert(VideoEntity, video);
        } catch (error) {
          await fs.promises.rm(path.join(this.uploadsDir, fileName), { force: true });
          throw error;
        }
      });
      return video;
    } finally {
      await fs.promises.rm(upload.tempPath, { force: true });
    }
  }

  async list(ownerId: string, limit: number, cursor?: string): Promise<Page<VideoEntity>> {
    const query = this.dataSource.getRepository(VideoEntity).createQueryBuilder("v")
      .where("v.owner_id = :ownerId", { ownerId })
      .orderBy("v.created_at", "DESC").addOrderBy("v.id", "DESC").limit(limit + 1);
    if (cursor) {
      const [at, id] = decodeCursor(cursor, 2);
      if (Number.isNaN(Date.parse(at)) || !/^[0-9a-f-]{36}$/.test(id)) decodeCursor("", 2);
      query.andWhere("(v.created_at, v.id) < (:at, :id)", { at, id });
    }
    const rows = await query.getMany();
    return toPage(rows, limit, (v) => v, (v) => encodeCursor([v.createdAt.toISOString(), v.id]));
  }

  /** The owner's video; 404 for anyone else. */
  async get(ownerId: string | null, id: string): Promise<VideoEntity> {
    const video = await this.dataSource.getRepository(VideoEntity).findOneBy({ id });
    if (!video || (ownerId !== null && video.ownerId !== ownerId)) throw notFound(`No video has id ${id}.`);
    return video;
  }

  async update(ownerId: string, id: string, changes: { title?: string; description?: string | null }): Promise<VideoEntity> {
    const video = await this.get(ownerId, id);
    if (changes.title !== undefined) video.title = changes.title;
    if (changes.description !== undefined) video.description = changes.description;
    video.updatedAt = new Date();
    await this.dataSource.getRepository(VideoEntity).update({ id }, { title: video.title, description: video.description, updatedAt: video.updatedAt });
    return video;
  }

  async delete(ownerId: string, id: string): Promise<void> {
    const video = await this.get(ownerId, id);
    await this.dataSource.getRepository(VideoEntity).delete({ id });
    this.located.delete(id);
    await fs.promises.rm(this.filePath(video), { force: true });
  }

  readonly onUserDeleted: UserDeletedHook = async (manager, user) => {
    const videos = await manager.findBy(VideoEntity, { ownerId: user.id });
    await manager.delete(VideoEntity, { ownerId: user.id });
    return async () => { for (const v of videos) await fs.promises.rm(this.filePath(v), { force: true }); };
  };

  /** `?expires=&sig=` for a stream URL valid for ttl seconds. */
  sign(id: string, ttlSeconds: number): string {
    const expires = Math.floor(Date.now() / 1000) + ttlSeconds;
    return `expires=${expires}&sig=${this.mac(id, String(expires))}`;
  }

  verify(id: string, expires: string, sig: string): boolean {
    const expected = Buffer.from(this.mac(id, expires));
    const given = Buffer.from(sig);
    return given.length === expected.length && timingSafeEqual(given, expected) && Number(expires) >= Date.now() / 1000;
  }

  private mac(id: string, expires: string) {
    return createHmac("sha256", this.secret).update(`${id}.${expires}`).digest("base64url");
  }

  /**
   * Start-up sweep: stale temp files, files no row names, rows whose file is gone. Under
   * the exclusive side of an advisory lock (a real lock on Postgres; PGlite has one
   * connection, so it cannot race): another process sweeping, or an upload being
   * recorded, makes this sweep step aside rather than wait.
   */
  async sweep(): Promise<boolean> {
    await fs.promises.mkdir(this.tempDir, { recursive: true });
    return this.dataSource.transaction(async (manager) => {
      const [{ locked }] = await manager.query(`SELECT pg_try_advisory_xact_lock($1) AS locked`, [SWEEP_LOCK]);
      if (!locked) return false;
      const hourAgo = Date.now() - 3600_000;
      for (const name of await fs.promises.readdir(this.tempDir)) {
        const file = path.join(this.tempDir, name);
        const stat = await fs.promises.stat(file).catch(() => null);
        if (stat && stat.mtimeMs < hourAgo) await fs.promises.rm(file, { force: true });
      }
      const rows = await manager.find(VideoEntity);
      const named = new Set(rows.map((r) => r.fileName));
      const files = new Set((await fs.promises.readdir(this.uploadsDir)).filter((n) => !n.startsWith(".")));
      for (const name of files) if (!named.has(name)) await fs.promises.rm(path.join(this.uploadsDir, name), { force: true, recursive: true });
      const missing = rows.filter((r) => !files.has(r.fileName)).map((r) => r.id);
      if (missing.length) await manager.delete(VideoEntity, missing);
      return true;
    });
  }
}

/** Seconds, from music-metadata; for MP4/QuickTime without an audio track (which it ignores) from the movie header. */
async function probeDuration(file: string, mime: string): Promise<number | null> {
  let d: number | undefined;
  try {
    const { parseFile } = await import("music-metadata");
    d = (await parseFile(file, { duration: true, skipCovers: true })).format.duration;
  } catch {
    d = undefined;
  }
  if ((d === undefined || d <= 0) && /^video\/(mp4|quicktime)$/.test(mime)) d = (await movieHeaderDuration(file).catch(() => null)) ?? undefined;
  return typeof d === "number" && Number.isFinite(d) && d > 0 ? d : null;
}

/** ISO BMFF: moov/mvhd duration ÷ timescale, walking box headers only (moov may sit at the end of a large file). */
async function movieHeaderDuration(file: string): Promise<number | null> {
  const fd = await fs.promises.open(file, "r");
  try {
    const size = (await fd.stat()).size;
    const header = Buffer.alloc(32);
    const read = async (at: number, n: number) => (await fd.read(header, 0, n, at)).bytesRead;
    // The boxes between start and end: [type, body offset, body end].
    const boxes = async function* (start: number, end: number) {
      for (let at = start; at + 8 <= end; ) {
        if ((await read(at, 16)) < 8) return;
        let boxSize = header.readUInt32BE(0);
        const type = header.toString("latin1", 4, 8);
        let body = at + 8;
        if (boxSize === 1) { boxSize = Number(header.readBigUInt64BE(8)); body = at + 16; }
        else if (boxSize === 0) boxSize = end - at;
        if (boxSize < body - at) return;
        yield [type, body, Math.min(end, at + boxSize)] as const;
        at += boxSize;
      }
    };
    for await (const [type, body, end] of boxes(0, size)) {
      if (type !== "moov") continue;
      for await (const [inner, mvhd] of boxes(body, end)) {
        if (inner !== "mvhd" || (await read(mvhd, 32)) < 32) continue;
        const v1 = header[0] === 1;
        const timescale = header.readUInt32BE(v1 ? 20 : 12);
        const duration = v1 ? Number(header.readBigUInt64BE(24)) : header.readUInt32BE(16);
        // All ones: "unknown" in ISO 14496-12.
        if (!timescale || !duration || (!v1 && duration === 0xffffffff)) return null;
        return duration / timescale;
      }
      return null;
    }
    return null;
  } finally {
    await fd.close();
  }
}
