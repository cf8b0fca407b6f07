import { defineModule } from "../../core/module";
import { createPrincipalLimiter } from "../../http/post-limit";
import { MessagingService } from "./messaging.service";
import { Messaging1763700001000 } from "./migrations/1763700001000-messaging";
import { PostMessage1763700002000 } from "./migrations/1763700002000-post-message";
import { Idempotency1763700013000 } from "./migrations/1763700013000-idempotency";

/**
 * The one messaging core: channels, direct messages, conference rooms and pair rooms
 * post and read through it. It owns no stream kind itself; each module that holds
 * conversations makes its own with `messaging.streamKind(kind, where)`.
 */
export const messagingModule = defineModule<MessagingService>({
  name: "messaging",
  // Its first migration also made the chat module's channels table (they were one module then).
  migrations: [Messaging1763700001000, PostMessage1763700002000, Idempotency1763700013000],
  async create({ dataSource, relay, config, rateLimits, log, messageMetrics }) {
    const postLimit = await createPrincipalLimiter(config.rateLimitPostsPerMinute, rateLimits.create("posts"), log, "messages");
    return { exports: new MessagingService(dataSource, relay, postLimit, messageMetrics) };
  },
});

export {
  HistoryQuerySchema,
  MessageBodySchema,
  MessageIdSchema,
  MessagePageSchema,
  MessageSchema,
  PostMessageBody,
  StreamQuerySchema,
  toHistoryQuery,
} from "./messaging.schemas";
export { IdempotencyKeySchema, idempotencyKeyOf, sendPosted } from "./idempotency";
export { isReplay } from "./messaging.service";
export type { HistoryQuery, Message, MessagingService, Posted } from "./messaging.service";
export type { MessageStreamKind } from "./streams";
