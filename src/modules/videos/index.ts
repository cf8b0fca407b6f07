import fs from "node:fs";
import { defineModule } from "../../core/module";
import { resolveSecret } from "../../core/secrets";
import { Authenticators } from "../../http/auth-context";
import { accountsModule } from "../accounts";
import { Videos1763700006000 } from "./migrations/1763700006000-videos";
import { VideoEntity } from "./video.entity";
import { registerVideoRoutes } from "./videos.routes";
import { VideosService } from "./videos.service";

/** Personal videos: upload, list, stream with ranges and signed URLs. */
export const videosModule = defineModule<VideosService>({
  name: "videos",
  entities: [VideoEntity],
  migrations: [Videos1763700006000],
  create(kernel, use) {
    const { config, dataSource } = kernel;
    const videos = new VideosService(dataSource, config.uploadsDir, resolveSecret("video-url-secret", null, config.dataDir));
    fs.mkdirSync(videos.tempDir, { recursive: true });
    const authenticators = new Authenticators(use(accountsModule).sessions.httpAuthenticators());
    return {
      exports: videos,
      routes: (api) => registerVideoRoutes(api, videos, { publicUrl: config.publicUrl, maxUploadBytes: config.maxUploadBytes, ttlSeconds: config.streamUrlTtlSeconds, authenticators }),
      onUserDeleted: videos.onUserDeleted,
      start: async () => { await videos.sweep(); },
    };
  },
});
