import { socketHandler, type SocketFace } from "../../core/module";
import type { AppSocket } from "../../realtime/socket-server";
import type { ResumePoint, StreamRelay } from "../../realtime/stream-relay";
import { asUser, USER_PRINCIPAL } from "../accounts";
import { ChatSendPayload, ChatSubscribePayload, ChatUnsubscribePayload, DirectSendPayload } from "./chat.schemas";
import type { ChatService } from "./chat.service";

const DIRECT_FROM = "chat:direct-from";

/**
 * chat:subscribe / chat:unsubscribe / chat:send / dm:send, each acknowledged; and a
 * signed-in user's direct messages as `dm:message`, followed from the position read at
 * the handshake (before the client is told it is connected), so none committed after
 * connecting is missed.
 */
export function chatSocketFace(chat: ChatService, relay: StreamRelay, log: { error(obj: object, msg: string): void }): SocketFace {
  return {
    async handshake(socket) {
      if (socket.data.principal.kind !== USER_PRINCIPAL) return;
      socket.data.state.set(DIRECT_FROM, await relay.resumePoint(chat.directs.key(socket.data.principal.id), undefined));
    },
    onConnect(socket: AppSocket, sockets) {
      const from = socket.data.state.get(DIRECT_FROM) as ResumePoint | undefined;
      if (!from) return;
      socket.data.state.delete(DIRECT_FROM);
      sockets.follow(socket, chat.directs.key(socket.data.principal.id), "dm:message", from).catch((error: unknown) => {
        log.error({ err: error }, "could not relay direct messages to a socket");
        socket.disconnect(true);
      });
    },
    handlers: [
      socketHandler({
        event: "chat:subscribe",
        summary: "Follow a channel: `chat:message` events, the missed ones (after `after`) first",
        schema: ChatSubscribePayload,
        // Missed messages (after `after`) are emitted before this acknowledgement.
        async handle(socket, { channel_id, after }, sockets) {
          asUser(socket.data.principal);
          await sockets.follow(socket, chat.channels.key(channel_id), "chat:message", after, async () => {
            await chat.getChannel(channel_id);
          });
          return { channel_id };
        },
      }),
      socketHandler({
        event: "chat:unsubscribe",
        summary: "Stop following a channel",
        schema: ChatUnsubscribePayload,
        async handle(socket, { channel_id }, sockets) {
          await sockets.unfollow(socket, chat.channels.key(channel_id));
          return { channel_id };
        },
      }),
      socketHandler({
        event: "chat:send",
        summary: "Post to a channel; the ack carries the committed message",
        schema: ChatSendPayload,
        handle: async (socket, { channel_id, body, idempotency_key }) => ({ message: await chat.postToChannel(asUser(socket.data.principal).user, channel_id, body, idempotency_key) }),
      }),
      socketHandler({
        event: "dm:send",
        summary: "Send a direct message; the ack carries the committed message",
        schema: DirectSendPayload,
        handle: async (socket, { to, body, idempotency_key }) => ({ message: await chat.sendDirect(asUser(socket.data.principal).user, to, body, idempotency_key) }),
      }),
    ],
  };
}
