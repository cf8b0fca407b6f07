import type { SocketFace } from "../../core/module";
import type { Logger } from "../../logger";
import type { Connections } from "../../realtime/connections";
import type { AppSocket, SocketRelay } from "../../realtime/socket-server";
import type { StreamRelay } from "../../realtime/stream-relay";
import { EventSchema, parseMessage } from "./lobby.protocol";
import type { LobbyService } from "./lobby.service";
import { LobbySession } from "./lobby.session";

const SESSION = "lobby:session";

/** The lobby over Socket.IO: `lobby` events both ways, carrying the `/lobby_api` messages; the socket is signed in already. */
export function lobbySocketFace(lobby: LobbyService, relay: StreamRelay, connections: Connections, log: Logger): SocketFace {
  // A relayed event is one object for every subscriber on this process: serialised once,
  // and its Socket.IO packet built once (SocketRelay.emitJson), not once per socket.
  const encoded = new WeakMap<object, string>();
  const json = (message: object): string => {
    let text = encoded.get(message);
    if (text === undefined) encoded.set(message, (text = JSON.stringify(message)));
    return text;
  };
  return {
    onConnect(socket: AppSocket, sockets: SocketRelay) {
      const session = new LobbySession(lobby, relay, connections, {
        send: (message) => sockets.emitJson(socket, "lobby", json(message)),
        end: () => socket.disconnect(true),
        address: socket.handshake.address,
        log,
      });
      session.signIn(socket.data.principal);
      socket.data.state.set(SESSION, session);
      socket.on("lobby", (payload: unknown) => {
        const message = parseMessage(payload);
        if (message) session.handle(message);
        else session.reject();
      });
    },
    onDisconnect(socket: AppSocket) {
      (socket.data.state.get(SESSION) as LobbySession | undefined)?.close();
    },
    emits: [{ event: "lobby", summary: "A lobby answer or event, as on `/lobby_api`", schema: EventSchema }],
  };
}
