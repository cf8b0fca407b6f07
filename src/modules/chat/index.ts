import { defineModule } from "../../core/module";
import { accountsModule } from "../accounts";
import { messagingModule } from "../messaging";
import { ChannelEntity } from "./channel.entity";
import { registerChatRoutes } from "./chat.routes";
import { ChatService } from "./chat.service";
import { chatSocketFace } from "./chat.socket";

/** Named channels and direct messages: REST, Server-Sent Events and Socket.IO. */
export const chatModule = defineModule<ChatService>({
  name: "chat",
  entities: [ChannelEntity],
  create(kernel, use) {
    const chat = new ChatService(kernel.dataSource, use(messagingModule), use(accountsModule).accounts);
    return {
      exports: chat,
      streams: [chat.channels.source, chat.directs.source],
      routes: (api) => registerChatRoutes(api, chat, kernel.relay, kernel.eventStreams, kernel.config.publicUrl),
      socket: chatSocketFace(chat, kernel.relay, kernel.log),
      onUserDeleted: chat.deleteDirectMessages,
    };
  },
});
