import type { SocketFace } from "../../core/module";
import { defineSocketEvents, type ClientEventsOf, type ServerEventsOf } from "../../realtime/events";
import type { Logger } from "../../logger";
import type { Connections } from "../../realtime/connections";
import { setSocketState, socketState, type AppSocket, type SocketRelay } from "../../realtime/socket-server";
import type { StreamRelay } from "../../realtime/stream-relay";
import { ClientMessage, encodeOnce, parseMessage, ServerMessage } from "./lobby.protocol";
import type { LobbyService } from "./lobby.service";
import { LobbySession } from "./lobby.session";

const SESSION = "lobby:session";

/** The lobby's Socket.IO events: the `/lobby_api` messages both ways, in one event name. */
export const lobbyEvents = defineSocketEvents({
  receives: {
    lobby: { summary: "A `/lobby_api` client message (no ack: answered by `lobby` events); the socket is logged in as its token's user", payload: ClientMessage },
  },
  emits: {
    lobby: { summary: "A `/lobby_api` server message: an answer, or an event of the table subscription", payload: ServerMessage },
  },
});

declare module "../../realtime/events" {
  interface ClientToServerEvents extends ClientEventsOf<typeof lobbyEvents> {}
  interface ServerToClientEvents extends ServerEventsOf<typeof lobbyEvents> {}
}

/** The lobby over Socket.IO: `lobby` events both ways, carrying the `/lobby_api` messages; the socket is signed in already. */
export function lobbySocketFace(lobby: LobbyService, relay: StreamRelay, connections: Connections, log: Logger): SocketFace {
  // A relayed event is one object for every subscriber on this process: serialised once,
  // and its Socket.IO packet built once (SocketRelay.emitJson), not once per socket.
  const json = encodeOnce((message) => JSON.stringify(message));
  // A session only for the sockets that speak to the lobby: most never do, and each socket's cost is counted ten thousand times.
  const sessionOf = (socket: AppSocket, sockets: SocketRelay): LobbySession => {
    let session = socketState<LobbySession>(socket, SESSION);
    if (!session) {
      session = new LobbySession(lobby, relay, connections, {
        send: (message) => sockets.emitJson(socket, "lobby", json(message)),
        end: () => socket.disconnect(true),
        address: socket.handshake.address,
        log,
      });
      session.signIn(socket.data.principal);
      setSocketState(socket, SESSION, session);
    }
    return session;
  };
  return {
    listeners: [
      {
        event: "lobby",
        listen(socket, payload, sockets) {
          const session = sessionOf(socket, sockets);
          const message = parseMessage(payload);
          if (message) session.handle(message);
          else session.reject();
        },
      },
    ],
    onDisconnect(socket: AppSocket) {
      socketState<LobbySession>(socket, SESSION)?.close();
    },
    events: lobbyEvents,
  };
}
