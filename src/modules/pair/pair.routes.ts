import type { RequestHandler } from "express";
import type { Kernel } from "../../core/module";
import type { Api } from "../../http/api";
import { principalRoom } from "../../realtime/socket-server";
import { idempotencyKeyOf, isReplay, MessagePageSchema, MessageSchema, PostMessageBody, sendPosted, toHistoryQuery } from "../messaging";
import { ConnectSchema, PairCallPageSchema, PairHistoryQuery, PairUserSchema, PublicIdParams, RoomParams } from "./pair.schemas";
import { PAIR_PRINCIPAL, type PairService } from "./pair.service";

const tags = ["Pair"];

export function registerPairRoutes(api: Api, pair: PairService, kernel: Kernel, limiter: RequestHandler): void {
  const { sockets, connections, log } = kernel;
  api.route(
    { method: "post", path: "/pair/users", summary: "Create an anonymous pair identity", tags, auth: "none", before: [limiter],
      responses: { 201: { description: "The identity; privateId is shown only here", schema: PairUserSchema }, 429: "Too many", 503: "No public ids left" } },
    async ({ res }) => { res.status(201).json(await pair.create()); },
  );
  api.route(
    { method: "post", path: "/pair/users/:publicId/connect", summary: "The room id for you and another identity", tags, auth: "required", params: PublicIdParams,
      responses: { 200: { description: "The room id (the same whether the other exists or not)", schema: ConnectSchema } } },
    async ({ auth, params, res }) => {
      const { roomId, other, from } = await pair.connect(auth, params.publicId);
      res.json({ roomId });
      if (other) sockets.emit(principalRoom({ kind: PAIR_PRINCIPAL, id: other }), "pair:incoming_call", { roomId, from })
        .catch((error: unknown) => log.error({ err: error }, "could not deliver pair:incoming_call"));
    },
  );
  api.route(
    { method: "post", path: "/pair/rooms/:roomId/messages", summary: "Post to a pair room", tags, auth: "required", params: RoomParams, body: PostMessageBody,
      responses: { 201: { description: "The message", schema: MessageSchema }, 404: "No such room, or not a member" } },
    async ({ auth, params, body, req, res }) => {
      const room = await pair.room(auth, params.roomId);
      const posted = await pair.post(auth, room, body.body, idempotencyKeyOf(req));
      const message = { ...posted, room_id: room.room_id };
      sendPosted(res, posted, message);
      // A replay was delivered when it was first posted.
      if (isReplay(posted)) return;
      for (const id of [room.a_id, room.b_id])
        sockets.emit(principalRoom({ kind: PAIR_PRINCIPAL, id }), "pair:message", message).catch((error: unknown) => log.error({ err: error }, "could not deliver pair:message"));
    },
  );
  api.route(
    { method: "get", path: "/pair/rooms/:roomId/messages", summary: "A pair room's messages", tags, auth: "required", params: RoomParams, query: PairHistoryQuery,
      responses: { 200: { description: "A page of messages", schema: MessagePageSchema }, 404: "No such room, or not a member" } },
    async ({ auth, params, query, res }) => {
      await pair.room(auth, params.roomId);
      const page = await pair.history(params.roomId, toHistoryQuery(query));
      res.json({ ...page, items: page.items.map((m) => ({ ...m, room_id: params.roomId })) });
    },
  );
  api.route(
    { method: "get", path: "/pair/calls", summary: "Your pair rooms, newest first", tags, auth: "required",
      responses: { 200: { description: "Your rooms", schema: PairCallPageSchema } } },
    async ({ auth, res }) => { res.json(await pair.calls(auth)); },
  );
  api.route(
    { method: "delete", path: "/pair/users/me", summary: "Delete your pair identity", tags, auth: "required", responses: { 204: "Deleted" } },
    async ({ auth, res }) => {
      await pair.remove(auth);
      await connections.publish({ type: "ended", kind: PAIR_PRINCIPAL, id: auth.id, keep: null });
      res.status(204).end();
    },
  );
}
