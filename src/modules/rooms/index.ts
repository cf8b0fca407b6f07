import { defineModule } from "../../core/module";
import type { Principal } from "../../core/principal";
import { accountsModule } from "../accounts";
import { messagingModule } from "../messaging";
import { asPair } from "../pair";
import { Rooms1763700003000 } from "./migrations/1763700003000-rooms";
import { registerRoomsRoutes } from "./rooms.routes";
import { RoomsService } from "./rooms.service";
import { notifier, resyncConferenceMembers, roomsSocketFace } from "./rooms.socket";

/** Conference rooms: a host, participants, a capacity, room chat and call signaling. */
export const roomsModule = defineModule<RoomsService>({
  name: "rooms",
  migrations: [Rooms1763700003000],
  create(kernel, use) {
    const { accounts } = use(accountsModule);
    const rooms = new RoomsService(kernel.dataSource, accounts, use(messagingModule));
    const notify = notifier(kernel);
    // TURN usernames name a pair identity by its publicId, as API.md says.
    const turnName = async (principal: Principal) => asPair(principal)?.publicId ?? principal.name;
    return {
      exports: rooms,
      streams: [rooms.chat.source],
      routes: (api) => registerRoomsRoutes(api, rooms, kernel.config, notify, turnName),
      socket: roomsSocketFace(kernel, rooms, accounts),
      async start() {
        kernel.bus.onResync(() => resyncConferenceMembers(kernel, rooms).catch((error: unknown) => kernel.log.warn({ err: error }, "could not check conference-room members")));
      },
      async onUserDeleted(manager, user) {
        const left = await rooms.leaveAllRooms(manager, user);
        // After the commit, as for any leave: the rooms' sockets see who is left.
        return async () => {
          for (const guid of left) await notify(guid, await rooms.find(guid), user.id);
        };
      },
    };
  },
});
