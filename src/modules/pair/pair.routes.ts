import type { RequestHandler } from "express";
import type { Kernel } from "../../core/module";
import type { Api } from "../../http/api";
import { principalRoom } from "../../realtime/socket-server";
import { idempotencyKeyOf, sendPosted, toHistoryQuery } from "../messaging";
import {
  CallsQuery,
  ConnectSchema,
  PairCallPageSchema,
  PairHistoryQuery,
  PairMessagePageSchema,
  PairMessageSchema,
  PairPostBody,
  PairUserSchema,
  PrivateIdBody,
  PublicIdParams,
  RoomParams,
} from "./pair.schemas";
import { asPair, PAIR_PRINCIPAL, type PairPrincipal, type PairService } from "./pair.service";
import type { PairFollowers } from "./pair.socket";
import { forbidden } from "../../core/errors";
import type { Principal } from "../../core/principal";

const tag = "Pair";
const credentials = "Authenticate with header `X-Private-Id` or body field `privateId`.";

/** An account is authenticated, but these routes are a pair identity's own (403); pair rooms are 404 to it, as to everyone else. */
function identity(auth: Principal): PairPrincipal {
  const me = asPair(auth);
  if (!me) throw forbidden("This route is for pair identities (X-Private-Id).");
  return me;
}

export function registerPairRoutes(api: Api, pair: PairService, followers: PairFollowers, kernel: Kernel, limiter: RequestHandler): void {
  api.tag(tag, "Anonymous pair identities (`X-Private-Id`) and the room two of them share.");
  const { sockets, connections, log } = kernel;
  api.route(
    { method: "post", path: "/pair/users", operationId: "createPairIdentity", summary: "Create an anonymous pair identity", tag, auth: "none", before: [limiter],
      responses: { 201: { description: "The identity; privateId is shown only here", schema: PairUserSchema }, 429: "Too many", 503: "The public id space is running low" } },
    async ({ res }) => { res.status(201).json(await pair.create()); },
  );
  api.route(
    { method: "post", path: "/pair/users/:publicId/connect", operationId: "connectPair", summary: "The room id for you and another identity", description: credentials, tag, auth: "required",
      params: PublicIdParams, body: PrivateIdBody,
      responses: { 200: { description: "The room id (the same whether the other exists or not)", schema: ConnectSchema } } },
    async ({ auth, params, res }) => {
      const me = identity(auth);
      const { roomId, other, opened } = await pair.connect(me, params.publicId);
      res.json({ roomId });
      if (!other) return;
      // After answering: nothing the answer waits on depends on whether the target exists.
      if (opened) followers.publish({ type: "opened", roomId, members: [me.id, other] }).catch((error: unknown) => log.error({ err: error }, "could not announce a pair room"));
      sockets.emit(principalRoom({ kind: PAIR_PRINCIPAL, id: other }), "pair:incoming_call", { roomId, from: { publicId: me.publicId, username: me.name } })
        .catch((error: unknown) => log.error({ err: error }, "could not deliver pair:incoming_call"));
    },
  );
  api.route(
    { method: "post", path: "/pair/rooms/:roomId/messages", operationId: "postPairMessage", summary: "Post to a pair room", description: credentials, tag, auth: "required", params: RoomParams, body: PairPostBody,
      responses: { 201: { description: "The message (its members' sockets get it as pair:message)", schema: PairMessageSchema }, 404: "No such room, or not a member" } },
    async ({ auth, params, body, req, res }) => {
      const room = await pair.room(auth, params.roomId);
      sendPosted(res, await pair.post(auth, room, body.body, idempotencyKeyOf(req)));
    },
  );
  api.route(
    { method: "get", path: "/pair/rooms/:roomId/messages", operationId: "listPairMessages", summary: "A pair room's messages", description: `Paged like every message history. ${credentials}`, tag, auth: "required",
      params: RoomParams, query: PairHistoryQuery,
      responses: { 200: { description: "A page of messages", schema: PairMessagePageSchema }, 404: "No such room, or not a member" } },
    async ({ auth, params, query, res }) => {
      await pair.room(auth, params.roomId);
      res.json(await pair.history(params.roomId, toHistoryQuery(query)));
    },
  );
  api.route(
    { method: "get", path: "/pair/calls", operationId: "listPairCalls", summary: "Your pair rooms, newest first", description: `Paginated (limit, cursor). ${credentials}`, tag, auth: "required", query: CallsQuery,
      responses: { 200: { description: "A page of your rooms", schema: PairCallPageSchema }, 400: "Invalid limit or cursor" } },
    async ({ auth, query, res }) => { res.json(await pair.calls(identity(auth), query.limit, query.cursor)); },
  );
  api.route(
    { method: "delete", path: "/pair/users/me", operationId: "deletePairIdentity", summary: "Delete your pair identity", description: credentials, tag, auth: "required", body: PrivateIdBody, responses: { 204: "Deleted" } },
    async ({ auth, res }) => {
      const me = identity(auth);
      const rooms = await pair.remove(me);
      // Its sockets end on every process; the other members' sockets stop following the rooms.
      await connections.publish({ type: "ended", kind: PAIR_PRINCIPAL, id: me.id, keep: null });
      for (const room of rooms) await followers.publish({ type: "closed", ...room });
      res.status(204).end();
    },
  );
}
