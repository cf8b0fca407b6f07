import { socketHandlers, type SocketFace } from "../../core/module";
import { defineSocketEvents, type ClientEventsOf, type ServerEventsOf } from "../../realtime/events";
import { setSocketState, socketState, type AppSocket } from "../../realtime/socket-server";
import type { ResumePoint, StreamRelay } from "../../realtime/stream-relay";
import { asUser, USER_PRINCIPAL } from "../accounts";
import { MessageSchema } from "../messaging";
import { ChannelIdResult, ChatSendPayload, ChatSubscribePayload, ChatUnsubscribePayload, DirectSendPayload, PostedResult } from "./chat.schemas";
import type { ChatService } from "./chat.service";

const DIRECT_FROM = "chat:direct-from";

/** The chat module's Socket.IO events: its handlers, its AsyncAPI channels and its typed events come from here. */
export const chatEvents = defineSocketEvents({
  requests: {
    "chat:subscribe": {
      summary: "Follow a channel: `chat:message` events, the missed ones (after `after`, a message id) first, before the ack",
      payload: ChatSubscribePayload,
      result: ChannelIdResult,
    },
    "chat:unsubscribe": { summary: "Stop following a channel", payload: ChatUnsubscribePayload, result: ChannelIdResult },
    "chat:send": { summary: "Post to a channel; the ack carries the committed message", payload: ChatSendPayload, result: PostedResult },
    "dm:send": { summary: "Send a direct message; the ack carries the committed message", payload: DirectSendPayload, result: PostedResult },
  },
  emits: {
    "chat:message": { summary: "A message in a channel this socket follows (`chat:subscribe`), in order, none missed", payload: MessageSchema },
    "dm:message": { summary: "A direct message the user sent or received, from the moment the socket connected; no subscription needed", payload: MessageSchema },
  },
});

declare module "../../realtime/events" {
  interface ClientToServerEvents extends ClientEventsOf<typeof chatEvents> {}
  interface ServerToClientEvents extends ServerEventsOf<typeof chatEvents> {}
}

/**
 * chat:subscribe / chat:unsubscribe / chat:send / dm:send, each acknowledged; and a
 * signed-in user's direct messages as `dm:message`, followed from the position read at
 * the handshake (before the client is told it is connected), so none committed after
 * connecting is missed.
 */
export function chatSocketFace(chat: ChatService, relay: StreamRelay, log: { error(obj: object, msg: string): void }): SocketFace {
  return {
    events: chatEvents,
    async handshake(socket) {
      if (socket.data.principal.kind !== USER_PRINCIPAL) return;
      setSocketState(socket, DIRECT_FROM, await relay.resumePoint(chat.directs.key(socket.data.principal.id), undefined));
    },
    onConnect(socket: AppSocket, sockets) {
      const from = socketState<ResumePoint>(socket, DIRECT_FROM);
      if (!from) return;
      setSocketState(socket, DIRECT_FROM, undefined);
      sockets.follow(socket, chat.directs.key(socket.data.principal.id), "dm:message", from).catch((error: unknown) => {
        log.error({ err: error }, "could not relay direct messages to a socket");
        socket.disconnect(true);
      });
    },
    handlers: socketHandlers(chatEvents.requests, {
      // Missed messages (after `after`) are emitted before this acknowledgement.
      async "chat:subscribe"(socket, { channel_id, after }, sockets) {
        asUser(socket.data.principal);
        await sockets.follow(socket, chat.channels.key(channel_id), "chat:message", after, async () => {
          await chat.assertChannelExists(channel_id);
        });
        return { channel_id };
      },
      async "chat:unsubscribe"(socket, { channel_id }, sockets) {
        await sockets.unfollow(socket, chat.channels.key(channel_id));
        return { channel_id };
      },
      "chat:send": async (socket, { channel_id, body, idempotency_key }) => ({
        message: await chat.postToChannel(asUser(socket.data.principal).user, channel_id, body, idempotency_key),
      }),
      "dm:send": async (socket, { to, body, idempotency_key }) => ({
        message: await chat.sendDirect(asUser(socket.data.principal).user, to, body, idempotency_key),
      }),
    }),
  };
}
