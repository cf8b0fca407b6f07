import { notFound } from "../../core/errors";
import { socketHandlers, type Kernel, type SocketFace } from "../../core/module";
import { defineSocketEvents, type ClientEventsOf, type ServerEventsOf } from "../../realtime/events";
import { checkSignalSize, DeliveredResult, principalRoom } from "../../realtime/socket-server";
import { asUser, USER_PRINCIPAL, type AccountsService } from "../accounts";
import { MessageSchema } from "../messaging";
import { roomsPolicy } from "./rooms.policy";
import {
  EmptyResult,
  RoomGuidPayload,
  RoomResult,
  RoomSchema,
  RoomSignalPayload,
  RoomSignalSchema,
  RoomSubscribePayload,
} from "./rooms.schemas";
import type { Room, RoomsService } from "./rooms.service";

/** The rooms module's Socket.IO events: its handlers, its AsyncAPI channels and its typed events come from here. */
export const roomsEvents = defineSocketEvents({
  requests: {
    "room:subscribe": {
      summary: "Follow a room (participants only): `room:updated`, and `room:message` with the missed ones (after `after`, a message id) first",
      payload: RoomSubscribePayload,
      result: RoomResult,
    },
    "room:unsubscribe": { summary: "Stop following a room (a no-op when not subscribed)", payload: RoomGuidPayload, result: EmptyResult },
    "room:signal": {
      summary: "Relay WebRTC signaling (`data`, a JSON object up to 64 KiB) to every socket of participant `to`, on any process; not stored",
      payload: RoomSignalPayload,
      result: DeliveredResult,
    },
  },
  emits: {
    "room:updated": { summary: "The room after a membership or host change (live only); one last time without you when you leave or are removed", payload: RoomSchema },
    "room:message": { summary: "A message in the room's chat, in order, none missed", payload: MessageSchema },
    "room:signal": { summary: "Signaling data from another participant", payload: RoomSignalSchema },
  },
});

declare module "../../realtime/events" {
  interface ClientToServerEvents extends ClientEventsOf<typeof roomsEvents> {}
  interface ServerToClientEvents extends ServerEventsOf<typeof roomsEvents> {}
}

export const conferenceRoom = (guid: string) => `conference:${guid}`;

/**
 * After a committed change: `room:updated` to the room's sockets, on every process; then
 * the sockets of the user who left (`leftId`), or all of them when the room closed, leave
 * its channel, which stops their room chat too (see room:subscribe).
 */
export function notifier(kernel: Kernel) {
  return async (guid: string, room: Room | null, leftId?: string): Promise<void> => {
    if (room) await kernel.sockets.emit(conferenceRoom(guid), "room:updated", room);
    if (!room) kernel.sockets.leave(conferenceRoom(guid), conferenceRoom(guid));
    else if (leftId) kernel.sockets.leave(principalRoom({ kind: USER_PRINCIPAL, id: leftId }), conferenceRoom(guid));
  };
}

/**
 * While the bus is down a leave on another process does not reach this one's sockets: at
 * every resync (while down, and once it is back) the sockets in conference rooms here are
 * checked against the database, and those no longer in the room leave it (which stops
 * their room chat, as a leave does).
 */
export async function resyncConferenceMembers(kernel: Kernel, rooms: RoomsService): Promise<void> {
  const local = kernel.sockets.localMembers(conferenceRoom(""));
  if (local.size === 0) return;
  const members = await rooms.participantIds([...local.keys()].map((room) => room.slice(conferenceRoom("").length)));
  for (const [room, sockets] of local) {
    const ids = members.get(room.slice(conferenceRoom("").length));
    for (const socket of sockets) if (!ids?.has(socket.principalId)) socket.leave();
  }
}

export function roomsSocketFace(kernel: Kernel, rooms: RoomsService, accounts: AccountsService): SocketFace {
  return {
    events: roomsEvents,
    handlers: socketHandlers(roomsEvents.requests, {
      async "room:subscribe"(socket, { guid, after }, sockets) {
        const user = asUser(socket.data.principal);
        const allowed = async () => {
          const room = await rooms.get(guid);
          roomsPolicy.authorize(user, "take_part", room);
          return room;
        };
        let room = await allowed();
        // In the room's channel before following its chat: leaving the channel (on any
        // process) is what stops the chat, so a participant who leaves gets nothing more.
        await socket.join(conferenceRoom(guid));
        try {
          await sockets.follow(socket, rooms.chat.key(guid), "room:message", after, undefined, { whileIn: conferenceRoom(guid) });
          // A leave that committed while this socket was joining missed it: look again.
          room = await allowed();
        } catch (error) {
          await socket.leave(conferenceRoom(guid));
          await sockets.unfollow(socket, rooms.chat.key(guid));
          throw error;
        }
        return { room };
      },
      async "room:unsubscribe"(socket, { guid }, sockets) {
        await socket.leave(conferenceRoom(guid));
        await sockets.unfollow(socket, rooms.chat.key(guid));
        return {};
      },
      async "room:signal"(socket, { guid, to, data }) {
        const user = asUser(socket.data.principal);
        const room = await rooms.get(guid);
        roomsPolicy.authorize(user, "take_part", room);
        if (!room.participants.some((name) => name.toLowerCase() === to.toLowerCase())) throw notFound(`${to} is not in this room.`);
        checkSignalSize(data);
        const target = await accounts.findByUsername(kernel.dataSource.manager, to);
        if (!target) throw notFound(`${to} is not in this room.`);
        const delivered = await kernel.sockets.emit(principalRoom({ kind: USER_PRINCIPAL, id: target.id }), "room:signal", { guid, from: user.name, data });
        return { delivered };
      },
    }),
  };
}
