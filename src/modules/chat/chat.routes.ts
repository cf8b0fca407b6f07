import { eventStreamResponse, type Api } from "../../http/api";
import { absoluteUrl } from "../../http/urls";
import { EventStreams, type EventStream } from "../../realtime/sse";
import type { ResumePoint, StreamRelay } from "../../realtime/stream-relay";
import { asUser, UsernameParams } from "../accounts";
import { HistoryQuerySchema, idempotencyKeyOf, MessagePageSchema, MessageSchema, PostMessageBody, sendPosted, StreamQuerySchema, toHistoryQuery, type Message } from "../messaging";
import { ChannelListQuery, ChannelPageSchema, ChannelParams, ChannelSchema, CreateChannelBody, DirectHistoryQuery } from "./chat.schemas";
import type { ChatService } from "./chat.service";

const tag = "Chat";
const eventStream = eventStreamResponse(
  "Server-Sent Events: one `message` event per message, in order, until the session ends",
  "`retry: 3000` first; then per message `id:` its id (send it back as Last-Event-ID), `event: message` and `data:` the Message as one line of JSON (the `Message` schema); `: heartbeat` comments keep the connection open.",
  'retry: 3000\n\nid: 1042\nevent: message\ndata: {"id":"1042","channel_id":"6f1c2a0e-3b7d-4c8e-9a51-2d4f6b8e0c13","room_guid":null,"sender":"ada","recipient":null,"body":"hello","created_at":"2026-12-03T08:00:00.000Z"}\n\n: heartbeat\n\n',
);

export function registerChatRoutes(api: Api, chat: ChatService, relay: StreamRelay, streams: EventStreams, publicUrl: string | null): void {
  api.tag(tag, "Named channels and direct messages: history, posting, and following them live over Server-Sent Events.");
  api.route(
    {
      method: "get", path: "/chat/rooms", operationId: "listChannels", summary: "List channels", tag, auth: "required", query: ChannelListQuery,
      responses: { 200: { description: "A page of channels, by name", schema: ChannelPageSchema }, 400: "Invalid limit or cursor" },
    },
    async ({ auth, query, res }) => {
      asUser(auth);
      res.json(await chat.listChannels(query.limit, query.cursor));
    },
  );

  api.route(
    {
      method: "post", path: "/chat/rooms", operationId: "createChannel", summary: "Create a channel", tag, auth: "required", body: CreateChannelBody,
      responses: { 201: { description: "The channel; Location is its absolute URL", schema: ChannelSchema }, 409: "A channel has that name (in any letter case)" },
    },
    async ({ auth, body, req, res }) => {
      const channel = await chat.createChannel(asUser(auth).user, body.name);
      res.status(201).location(absoluteUrl(req, publicUrl, `/chat/rooms/${channel.id}`)).json(channel);
    },
  );

  api.route(
    {
      method: "get", path: "/chat/rooms/:id", operationId: "getChannel", summary: "A channel", tag, auth: "required", params: ChannelParams,
      responses: { 200: { description: "The channel", schema: ChannelSchema }, 404: "No such channel" },
    },
    async ({ auth, params, res }) => {
      asUser(auth);
      res.json(await chat.getChannel(params.id));
    },
  );

  api.route(
    {
      method: "get", path: "/chat/rooms/:id/messages", operationId: "listChannelMessages", summary: "A channel's messages", tag, auth: "required",
      description: "Newest first, paged with `before`; with `after` (a message id), the messages after it, oldest first.",
      params: ChannelParams, query: HistoryQuerySchema,
      responses: { 200: { description: "A page of messages", schema: MessagePageSchema }, 400: "Invalid paging", 404: "No such channel" },
    },
    async ({ auth, params, query, res }) => {
      asUser(auth);
      res.json(await chat.channelHistory(params.id, toHistoryQuery(query)));
    },
  );

  api.route(
    {
      method: "post", path: "/chat/rooms/:id/messages", operationId: "postChannelMessage", summary: "Post to a channel", tag, auth: "required",
      params: ChannelParams, body: PostMessageBody,
      responses: { 201: { description: "The message, committed", schema: MessageSchema }, 404: "No such channel" },
    },
    async ({ auth, params, body, req, res }) => {
      sendPosted(res, await chat.postToChannel(asUser(auth).user, params.id, body.body, idempotencyKeyOf(req)));
    },
  );

  api.route(
    {
      method: "get", path: "/chat/rooms/:id/subscribe", operationId: "subscribeChannel", summary: "Follow a channel (Server-Sent Events)", tag, auth: "required", queryToken: true,
      description: "`Last-Event-ID` or `?after=` replays the messages after that id first. The token may come as `?access_token=`.",
      params: ChannelParams, query: StreamQuerySchema,
      responses: { 200: eventStream, 400: "Invalid Last-Event-ID or after", 404: "No such channel" },
    },
    async ({ auth, params, query, req, res }) => {
      asUser(auth);
      await chat.getChannel(params.id);
      const key = chat.channels.key(params.id);
      const from = await relay.resumePoint(key, EventStreams.resumeFrom(req, query.after));
      await follow(relay, streams.start(req, res, auth), key, from);
    },
  );

  api.route(
    {
      method: "post", path: "/chat/users/:username/messages", operationId: "sendDirectMessage", summary: "Send a direct message", tag, auth: "required",
      params: UsernameParams, body: PostMessageBody,
      responses: { 201: { description: "The message, committed", schema: MessageSchema }, 404: "No such user" },
    },
    async ({ auth, params, body, req, res }) => {
      sendPosted(res, await chat.sendDirect(asUser(auth).user, params.username, body.body, idempotencyKeyOf(req)));
    },
  );

  api.route(
    {
      method: "get", path: "/chat/messages", operationId: "listDirectMessages", summary: "Your direct messages", tag, auth: "required",
      description: "Messages to and from the caller; `?with=username` narrows to one conversation. Paged as channel messages.",
      query: DirectHistoryQuery,
      responses: { 200: { description: "A page of messages", schema: MessagePageSchema }, 400: "Invalid paging", 404: "No such user for `with`" },
    },
    async ({ auth, query, res }) => {
      res.json(await chat.directHistory(asUser(auth).user, query.with, toHistoryQuery(query)));
    },
  );

  api.route(
    {
      method: "get", path: "/chat/subscribe", operationId: "subscribeDirectMessages", summary: "Follow your direct messages (Server-Sent Events)", tag, auth: "required", queryToken: true,
      description: "Messages you send and receive. `Last-Event-ID` or `?after=` replays what was missed first.",
      query: StreamQuerySchema,
      responses: { 200: eventStream, 400: "Invalid Last-Event-ID or after" },
    },
    async ({ auth, query, req, res }) => {
      const key = chat.directs.key(asUser(auth).id);
      const from = await relay.resumePoint(key, EventStreams.resumeFrom(req, query.after));
      await follow(relay, streams.start(req, res, auth), key, from);
    },
  );
}

/** Relays the stream's messages after `from` into the event stream until either side closes. */
async function follow(relay: StreamRelay, stream: EventStream, key: string, from: ResumePoint) {
  const cancel = new AbortController();
  stream.onClose(() => cancel.abort());
  const stop = await relay.listen<Message>(key, (message, json) => stream.send(message.id, "message", json), {
    from,
    signal: cancel.signal,
    ready: () => stream.ready(),
  });
  stream.onClose(stop);
}
