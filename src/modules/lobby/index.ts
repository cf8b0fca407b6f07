import { defineModule } from "../../core/module";
import { accountsModule } from "../accounts";
import { registerLobbyRoutes } from "./lobby.routes";
import { LobbyService } from "./lobby.service";
import { lobbySocketFace } from "./lobby.socket";
import { LobbyWebSocketDoor } from "./lobby.ws";
import { Lobby1763700005000 } from "./migrations/1763700005000-lobby";

/** The game lobby: ordered tables, over the `/lobby_api` WebSocket, REST and Socket.IO. */
export const lobbyModule = defineModule<LobbyService>({
  name: "lobby",
  migrations: [Lobby1763700005000],
  create(kernel, use) {
    const { accounts, sessions } = use(accountsModule);
    const lobby = new LobbyService(kernel.dataSource, kernel.relay, accounts, sessions, kernel.log, kernel.failedCredentials);
    const door = new LobbyWebSocketDoor(lobby, kernel.relay, kernel.connections, kernel.log, kernel.config.trustProxy, kernel.config.lobbyPingSeconds, kernel.messageMetrics);
    return {
      exports: lobby,
      streams: [lobby.source],
      routes: (api) => registerLobbyRoutes(api, lobby),
      socket: lobbySocketFace(lobby, kernel.relay, kernel.connections, kernel.log),
      upgrades: [door.upgrade],
      start: async () => door.start(),
      stop: async () => door.stop(),
    };
  },
});

export { LOBBY_STREAM, LobbyFailure, type LobbyService } from "./lobby.service";
