import { createHmac } from "node:crypto";
import type { Config } from "../../config";
import type { Principal } from "../../core/principal";
import { conflict, notFound } from "../../core/errors";
import type { Api } from "../../http/api";
import { PageQuerySchema } from "../../http/schemas";
import { z } from "../../http/zod";
import { asUser, UsernameParams } from "../accounts";
import { HistoryQuerySchema, idempotencyKeyOf, MessagePageSchema, MessageSchema, PostMessageBody, sendPosted, toHistoryQuery } from "../messaging";
import { roomsPolicy } from "./rooms.policy";
import { CreateRoomBody, RoomListQuery, RoomPageSchema, RoomParams, RoomParticipantParams, RoomSchema, SetHostBody } from "./rooms.schemas";
import type { Room, RoomsService } from "./rooms.service";

const tag = "Conference rooms";
type Notify = (guid: string, room: Room | null, leftId?: string) => Promise<void>;

export function registerRoomsRoutes(api: Api, rooms: RoomsService, config: Config, notify: Notify, turnName: (principal: Principal) => Promise<string>): void {
  api.tag(tag, "Conference rooms people join for a call: membership, hosting, the room's chat, and WebRTC ICE servers.");
  api.route(
    {
      method: "get", path: "/users/:username/rooms", operationId: "listUserRooms", summary: "The conference rooms a user is in", tag, auth: "none",
      params: UsernameParams, query: PageQuerySchema,
      responses: { 200: { description: "A page of rooms, in the order the user joined them", schema: RoomPageSchema }, 400: "Invalid limit or cursor", 404: "No such user" },
    },
    async ({ params, query, res }) => {
      res.json(await rooms.roomsOf(params.username, query.limit, query.cursor));
    },
  );
  api.route(
    { method: "post", path: "/rooms", operationId: "createRoom", summary: "Create a room", tag, auth: "required", body: CreateRoomBody, responses: { 201: { description: "The room", schema: RoomSchema } } },
    async ({ auth, body, res }) => {
      res.status(201).json(await rooms.create(asUser(auth), body.name, body.capacity ?? 5));
    },
  );
  api.route(
    { method: "get", path: "/rooms", operationId: "listRooms", summary: "List rooms", tag, auth: "none", query: RoomListQuery, responses: { 200: { description: "A page of rooms", schema: RoomPageSchema }, 404: "No such member" } },
    async ({ query, res }) => {
      res.json(await rooms.list(query.member, query.limit, query.cursor));
    },
  );
  api.route(
    { method: "get", path: "/rooms/:guid", operationId: "getRoom", summary: "A room", tag, auth: "none", params: RoomParams, responses: { 200: { description: "The room", schema: RoomSchema }, 404: "No such room" } },
    async ({ params, res }) => {
      res.json(await rooms.get(params.guid));
    },
  );
  api.route(
    { method: "post", path: "/rooms/:guid/join", operationId: "joinRoom", summary: "Join a room", tag, auth: "required", params: RoomParams, responses: { 200: { description: "The room", schema: RoomSchema }, 404: "No such room", 409: "Full" } },
    async ({ auth, params, res }) => {
      const user = asUser(auth);
      const room = await rooms.join(params.guid, user.id, user.name);
      await notify(params.guid, room);
      res.json(room);
    },
  );
  api.route(
    { method: "post", path: "/rooms/:guid/leave", operationId: "leaveRoom", summary: "Leave a room", tag, auth: "required", params: RoomParams, responses: { 200: { description: "The room", schema: RoomSchema }, 204: "The room closed", 404: "No such room", 409: "Not a participant" } },
    async ({ auth, params, res }) => {
      const user = asUser(auth);
      const room = await rooms.leave(params.guid, user.id, user.name);
      await notify(params.guid, room, user.id);
      if (room) res.json(room);
      else res.status(204).end();
    },
  );
  api.route(
    { method: "put", path: "/rooms/:guid/host", operationId: "setRoomHost", summary: "Hand over hosting", tag, auth: "required", params: RoomParams, body: SetHostBody, responses: { 200: { description: "The room", schema: RoomSchema }, 403: "Not the host", 404: "No such room", 409: "Not a participant" } },
    async ({ auth, params, body, res }) => {
      const user = asUser(auth);
      const room = await rooms.locked(params.guid, async (m, room) => {
        roomsPolicy.authorize(user, "manage", room);
        if (!room.participants.includes(body.username)) throw conflict(`${body.username} is not in this room.`);
        await m.query(`UPDATE rooms SET host_id = $2 WHERE guid = $1`, [params.guid, await rooms.userId(m, body.username)]);
        return rooms.get(params.guid, m);
      });
      await notify(params.guid, room);
      res.json(room);
    },
  );
  api.route(
    { method: "delete", path: "/rooms/:guid/participants/:username", operationId: "removeRoomParticipant", summary: "Remove a participant", tag, auth: "required", params: RoomParticipantParams, responses: { 200: { description: "The room", schema: RoomSchema }, 403: "Not the host", 404: "No such room or participant", 409: "The host cannot remove themself" } },
    async ({ auth, params, res }) => {
      const user = asUser(auth);
      let removedId = "";
      const room = await rooms.locked(params.guid, async (m, room) => {
        roomsPolicy.authorize(user, "manage", room);
        if (params.username === user.name) throw conflict("The host cannot remove themself; leave instead.");
        if (!room.participants.includes(params.username)) throw notFound(`${params.username} is not in this room.`);
        removedId = await rooms.userId(m, params.username);
        await rooms.leaveRoom(m, params.guid, removedId);
        return rooms.get(params.guid, m);
      });
      await notify(params.guid, room, removedId);
      res.json(room);
    },
  );
  api.route(
    { method: "delete", path: "/rooms/:guid", operationId: "closeRoom", summary: "Close a room", tag, auth: "required", params: RoomParams, responses: { 204: "Closed", 403: "Not the host", 404: "No such room" } },
    async ({ auth, params, res }) => {
      const user = asUser(auth);
      roomsPolicy.authorize(user, "manage", await rooms.get(params.guid));
      await rooms.close(params.guid);
      await notify(params.guid, null);
      res.status(204).end();
    },
  );
  api.route(
    { method: "get", path: "/rooms/:guid/messages", operationId: "listRoomMessages", summary: "A room's chat", tag, auth: "required", params: RoomParams, query: HistoryQuerySchema, responses: { 200: { description: "A page of messages", schema: MessagePageSchema }, 403: "Not a participant", 404: "No such room" } },
    async ({ auth, params, query, res }) => {
      roomsPolicy.authorize(asUser(auth), "take_part", await rooms.get(params.guid));
      res.json(await rooms.history(params.guid, toHistoryQuery(query)));
    },
  );
  api.route(
    { method: "post", path: "/rooms/:guid/messages", operationId: "postRoomMessage", summary: "Post to a room's chat", tag, auth: "required", params: RoomParams, body: PostMessageBody, responses: { 201: { description: "The message", schema: MessageSchema }, 403: "Not a participant", 404: "No such room" } },
    async ({ auth, params, body, req, res }) => {
      const user = asUser(auth);
      roomsPolicy.authorize(user, "take_part", await rooms.get(params.guid));
      sendPosted(res, await rooms.post(params.guid, { id: user.id, name: user.name }, body.body, idempotencyKeyOf(req)));
    },
  );
  api.route(
    { method: "get", path: "/rtc/ice-servers", operationId: "getIceServers", summary: "STUN/TURN servers for WebRTC", tag, auth: "required", responses: { 200: { description: "ICE servers", schema: z.object({ ice_servers: z.array(z.any()), ttl_seconds: z.number() }) } } },
    async ({ auth, res }) => {
      const expiry = Math.floor(Date.now() / 1000) + config.turnTtlSeconds;
      const name = config.turnSecret ? await turnName(auth) : auth.name;
      const ice_servers = config.iceServers.map((server) => {
        const urls = Array.isArray(server.urls) ? server.urls : [server.urls];
        if (!config.turnSecret || !urls.some((u) => /^turns?:/.test(u))) return server;
        const username = `${expiry}:${name}`;
        return { ...server, username, credential: createHmac("sha1", config.turnSecret).update(username).digest("base64") };
      });
      res.json({ ice_servers, ttl_seconds: config.turnTtlSeconds });
    },
  );
}
