/**
 * A stream is one ordered conversation: a channel, a conference room, a pair room, or one
 * user's direct messages. Its key names it in message_streams, in bus events and in the
 * relay; `streamFilter` says which messages belong to it.
 */
export type StreamKind = "channel" | "room" | "dm";

export const channelStream = (channelId: string) => `channel:${channelId}`;
export const dmStream = (userId: string) => `dm:${userId}`;
export const roomStream = (roomGuid: string) => `room:${roomGuid}`;

export function streamKind(key: string): StreamKind {
  return key.slice(0, key.indexOf(":")) as StreamKind;
}

/** The SQL condition (on table alias m) selecting the stream's messages, using $1 for its id. */
export function streamFilter(key: string): { where: string; param: string } {
  const id = key.slice(key.indexOf(":") + 1);
  switch (streamKind(key)) {
    case "channel":
      return { where: "m.channel_id = $1", param: id };
    case "room":
      return { where: "m.room_guid = $1", param: id };
    case "dm":
      return { where: "m.recipient_id IS NOT NULL AND (m.recipient_id = $1 OR m.sender_id = $1)", param: id };
    default:
      throw new Error(`unknown stream key ${key}`);
  }
}
