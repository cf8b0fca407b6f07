import type { Api } from "../../http/api";
import { absoluteUrl } from "../../http/urls";
import { EventStreams, type EventStream } from "../../realtime/sse";
import type { ResumePoint, StreamRelay } from "../../realtime/stream-relay";
import { asUser, UsernameParams } from "../accounts";
import { HistoryQuerySchema, idempotencyKeyOf, MessagePageSchema, MessageSchema, PostMessageBody, sendPosted, StreamQuerySchema, toHistoryQuery, type Message } from "../messaging";
import { ChannelListQuery, ChannelPageSchema, ChannelParams, ChannelSchema, CreateChannelBody, DirectHistoryQuery } from "./chat.schemas";
import type { ChatService } from "./chat.service";

const tags = ["Chat"];
const eventStream = { description: "Server-Sent Events: `message` events, `id:` the message id, `data:` the message", contentType: "text/event-stream" };

export function registerChatRoutes(api: Api, chat: ChatService, relay: StreamRelay, streams: EventStreams, publicUrl: string | null): void {
  api.route(
    {
      method: "get", path: "/chat/rooms", summary: "List channels", tags, auth: "required", query: ChannelListQuery,
      responses: { 200: { description: "A page of channels, by name", schema: ChannelPageSchema }, 400: "Invalid limit or cursor" },
    },
    async ({ auth, query, res }) => {
      asUser(auth);
      res.json(await chat.listChannels(query.limit, query.cursor));
    },
  );

  api.route(
    {
      method: "post", path: "/chat/rooms", summary: "Create a channel", tags, auth: "required", body: CreateChannelBody,
      responses: { 201: { description: "The channel; Location is its absolute URL", schema: ChannelSchema }, 409: "A channel has that name (in any letter case)" },
    },
    async ({ auth, body, req, res }) => {
      const channel = await chat.createChannel(asUser(auth).user, body.name);
      res.status(201).location(absoluteUrl(req, publicUrl, `/chat/rooms/${channel.id}`)).json(channel);
    },
  );

  api.route(
    {
      method: "get", path: "/chat/rooms/:id", summary: "A channel", tags, auth: "required", params: ChannelParams,
      responses: { 200: { description: "The channel", schema: ChannelSchema }, 404: "No such channel" },
    },
    async ({ auth, params, res }) => {
      asUser(auth);
      res.json(await chat.getChannel(params.id));
    },
  );

  api.route(
    {
      method: "get", path: "/chat/rooms/:id/messages", summary: "A channel's messages", tags, auth: "required",
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
      method: "post", path: "/chat/rooms/:id/messages", summary: "Post to a channel", tags, auth: "required",
      params: ChannelParams, body: PostMessageBody,
      responses: { 201: { description: "The message, committed", schema: MessageSchema }, 404: "No such channel" },
    },
    async ({ auth, params, body, req, res }) => {
      sendPosted(res, await chat.postToChannel(asUser(auth).user, params.id, body.body, idempotencyKeyOf(req)));
    },
  );

  api.route(
    {
      method: "get", path: "/chat/rooms/:id/subscribe", summary: "Follow a channel (Server-Sent Events)", tags, auth: "required", queryToken: true,
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
      method: "post", path: "/chat/users/:username/messages", summary: "Send a direct message", tags, auth: "required",
      params: UsernameParams, body: PostMessageBody,
      responses: { 201: { description: "The message, committed", schema: MessageSchema }, 404: "No such user" },
    },
    async ({ auth, params, body, req, res }) => {
      sendPosted(res, await chat.sendDirect(asUser(auth).user, params.username, body.body, idempotencyKeyOf(req)));
    },
  );

  api.route(
    {
      method: "get", path: "/chat/messages", summary: "Your direct messages", tags, auth: "required",
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
      method: "get", path: "/chat/subscribe", summary: "Follow your direct messages (Server-Sent Events)", tags, auth: "required", queryToken: true,
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
