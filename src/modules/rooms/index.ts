import { defineModule } from "../../core/module";
import { accountsModule } from "../accounts";
import { messagingModule } from "../messaging";
import { Rooms1763700003000 } from "./migrations/1763700003000-rooms";
import { registerRoomsRoutes } from "./rooms.routes";
import { RoomsService } from "./rooms.service";
import { notifier, roomsSocketFace } from "./rooms.socket";

/** Conference rooms: a host, participants, a capacity, room chat and call signaling. */
export const roomsModule = defineModule<RoomsService>({
  name: "rooms",
  migrations: [Rooms1763700003000],
  create(kernel, use) {
    const { accounts } = use(accountsModule);
    const rooms = new RoomsService(kernel.dataSource, accounts, use(messagingModule));
    return {
      exports: rooms,
      streams: [rooms.chat.source],
      routes: (api) => registerRoomsRoutes(api, rooms, kernel.config, notifier(kernel, accounts)),
      socket: roomsSocketFace(kernel, rooms, accounts),
      onUserDeleted: rooms.leaveAllRooms,
    };
  },
});
