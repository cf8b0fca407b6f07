import { z, type ZodType } from "zod";
import type { SocketFace, Upgrade } from "../core/module";
import { AckErrorSchema, type SocketMessageSpec } from "./events";

/**
 * A payload's JSON Schema, as AsyncAPI 3 carries it: draft-07 (AsyncAPI's own schema
 * format is a superset of it). A client's payload is described as the handler accepts
 * it (zod's input side), a server's as it is sent (the output side).
 */
export function payloadSchema(schema: ZodType, side: "input" | "output") {
  return { schemaFormat: PAYLOAD_FORMAT, schema: z.toJSONSchema(schema, { target: "draft-7", io: side }) };
}

export const PAYLOAD_FORMAT = "application/schema+json;version=draft-07";

const ACK_ERROR = z.object({ ok: z.literal(false), error: AckErrorSchema });

type Json = Record<string, unknown>;

/** AsyncAPI ids allow no `:`; addresses keep the event's real name. */
const idOf = (name: string) => name.replace(/[^A-Za-z0-9_.-]/g, "_");
const ref = (...path: string[]) => ({ $ref: `#/${path.map((p) => p.replace(/~/g, "~0").replace(/\//g, "~1")).join("/")}` });

function message(name: string, spec: SocketMessageSpec, side: "input" | "output"): Json {
  return { name, summary: spec.summary, payload: payloadSchema(spec.payload, side) };
}

/**
 * The AsyncAPI 3.0 document of the Socket.IO events and of the modules' own WebSocket
 * doors, made from the same declarations and zod schemas the handlers use, so it cannot
 * drift from them. Operations are the server's: `receive` what a client emits, `send`
 * what it emits; a request's ack is its operation's reply.
 */
export function createAsyncApiDocument(faces: SocketFace[], upgrades: Upgrade[], version: string): Json {
  const channels: Record<string, Json & { messages: Json }> = {};
  const operations: Record<string, Json> = {};
  const channel = (name: string, server: string, description?: string) => {
    const id = idOf(name.replace(/^\//, ""));
    if (channels[id] && channels[id].address !== name) throw new Error(`AsyncAPI: ${name} and ${String(channels[id].address)} would share the channel id ${id}`);
    return (channels[id] ??= { address: name, ...(description ? { description } : {}), servers: [ref("servers", server)], messages: {} });
  };

  for (const face of faces) {
    for (const handler of face.handlers ?? []) {
      const id = idOf(handler.event);
      const messages = channel(handler.event, "socketio").messages;
      messages.request = { name: handler.event, summary: handler.summary, payload: payloadSchema(handler.schema, "input") };
      messages.ack = {
        name: `${handler.event} ack`,
        summary: "`{ok: true, ...result}`, or `{ok: false, error}` with the problem details HTTP would give",
        payload: payloadSchema(z.union([z.object({ ok: z.literal(true) }).extend(resultShape(handler.result)), ACK_ERROR]), "output"),
      };
      operations[`receive.${id}`] = {
        action: "receive",
        summary: handler.summary,
        channel: ref("channels", id),
        messages: [ref("channels", id, "messages", "request")],
        reply: { channel: ref("channels", id), messages: [ref("channels", id, "messages", "ack")] },
        "x-socketio-ack": true,
      };
    }
    for (const [event, spec] of Object.entries(face.events?.receives ?? {})) {
      const id = idOf(event);
      channel(event, "socketio").messages.request = message(event, spec, "input");
      operations[`receive.${id}`] = { action: "receive", summary: spec.summary, channel: ref("channels", id), messages: [ref("channels", id, "messages", "request")] };
    }
    for (const [event, spec] of Object.entries(face.events?.emits ?? {})) {
      const id = idOf(event);
      channel(event, "socketio").messages.event = message(event, spec, "output");
      operations[`send.${id}`] = { action: "send", summary: spec.summary, channel: ref("channels", id), messages: [ref("channels", id, "messages", "event")] };
    }
  }

  const doors: Record<string, Json> = {};
  for (const upgrade of upgrades) {
    if (!upgrade.protocol) continue;
    const id = idOf(upgrade.path.replace(/^\//, ""));
    doors[id] = { protocol: "ws", pathname: upgrade.path, description: upgrade.protocol.summary };
    const messages = channel(upgrade.path, id, upgrade.protocol.summary).messages;
    const names = (side: Record<string, SocketMessageSpec>, prefix: string, io: "input" | "output") =>
      Object.entries(side).map(([name, spec]) => {
        messages[`${prefix}.${idOf(name)}`] = message(name, spec, io);
        return ref("channels", id, "messages", `${prefix}.${idOf(name)}`);
      });
    operations[`receive.${id}`] = { action: "receive", channel: ref("channels", id), messages: names(upgrade.protocol.receives, "client", "input") };
    operations[`send.${id}`] = { action: "send", channel: ref("channels", id), messages: names(upgrade.protocol.sends, "server", "output") };
  }

  return {
    asyncapi: "3.0.0",
    info: {
      title: "Convene real-time API",
      version,
      description:
        "Socket.IO events (path /socket.io; connect with `auth: {token}` or `auth: {privateId}`) and the plain WebSocket doors. " +
        "Every channel's address is a Socket.IO event name or a WebSocket path. The REST API is at /openapi.json.",
    },
    defaultContentType: "application/json",
    servers: {
      socketio: { protocol: "ws", pathname: "/socket.io/", description: "Socket.IO 4 (Engine.IO 4); a failed handshake is a `connect_error` whose message is `unauthorized`" },
      ...doors,
    },
    channels,
    operations,
  };
}

/** The result schema's fields, to put next to `ok: true`. */
function resultShape(result: ZodType): Record<string, ZodType> {
  return result instanceof z.ZodObject ? (result.shape as Record<string, ZodType>) : {};
}

/** The document for one request: its servers at the host the client used (or PUBLIC_URL). */
export function asyncApiFor(document: Json, origin: string): Json {
  const url = new URL(origin);
  const protocol = url.protocol === "https:" ? "wss" : "ws";
  const servers = Object.fromEntries(Object.entries(document.servers as Record<string, Json>).map(([id, server]) => [id, { host: url.host, ...server, protocol }]));
  return { ...document, servers };
}
