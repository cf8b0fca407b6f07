import type { Logger } from "../../logger";
import { onRequest, type SocketModule } from "../../realtime/socket-server";
import { channelStream } from "../messaging/streams";
import { ChatSendPayload, ChatSubscribePayload, ChatUnsubscribePayload, DirectSendPayload } from "./chat.schemas";
import type { ChatService } from "./chat.service";

/** chat:subscribe / chat:unsubscribe / chat:send / dm:send, each acknowledged. */
export function chatSocketModule(chat: ChatService, log: Logger): SocketModule {
  return (socket, sockets) => {
    onRequest(socket, "chat:subscribe", ChatSubscribePayload, log, async ({ channel_id, after }) => {
      // Missed messages (after `after`) are emitted before this acknowledgement.
      await sockets.follow(socket, channelStream(channel_id), "chat:message", after, async () => {
        await chat.getChannel(channel_id);
      });
      return { channel_id };
    });

    onRequest(socket, "chat:unsubscribe", ChatUnsubscribePayload, log, async ({ channel_id }) => {
      await sockets.unfollow(socket, channelStream(channel_id));
      return { channel_id };
    });

    onRequest(socket, "chat:send", ChatSendPayload, log, async ({ channel_id, body }) => ({
      message: await chat.postToChannel(socket.data.auth.user, channel_id, body),
    }));

    onRequest(socket, "dm:send", DirectSendPayload, log, async ({ to, body }) => ({
      message: await chat.sendDirect(socket.data.auth.user, to, body),
    }));
  };
}
