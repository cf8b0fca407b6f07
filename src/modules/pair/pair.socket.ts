import { notFound } from "../../core/errors";
import { socketHandler, type Kernel, type SocketFace } from "../../core/module";
import { checkSignalSize, principalRoom } from "../../realtime/socket-server";
import { PairSignalPayload } from "./pair.schemas";
import { PAIR_PRINCIPAL, type PairService } from "./pair.service";


/** pair:signal {roomId, data}: relayed to the other member's sockets. */
export function pairSocketFace(pair: PairService, kernel: Kernel): SocketFace {
  return {
    handlers: [
      socketHandler({
        event: "pair:signal",
        summary: "Relay signaling data to the other member of a pair room",
        schema: PairSignalPayload,
        async handle(socket, { roomId, data }) {
          const me = socket.data.principal;
          if (me.kind !== PAIR_PRINCIPAL) throw notFound("No such pair room.");
          checkSignalSize(data);
          const room = await pair.room(me, roomId);
          const self = await pair.user(me.id);
          const other = room.a_id === me.id ? room.b_id : room.a_id;
          const delivered = await kernel.sockets.emit(principalRoom({ kind: PAIR_PRINCIPAL, id: other }), "pair:signal", {
            roomId, from: { publicId: self?.public_id.trim(), username: me.name }, data,
          });
          return { delivered };
        },
      }),
    ],
  };
}
