import { belowThreshold } from "./backpressure";
import type { ServerToClientEvents } from "./events";
import type { MessageMetrics } from "./metrics";
import type { AppSocket } from "./socket-server";
import type { ResumePoint, StreamItem, StreamRelay } from "./stream-relay";

type RoomAdapter = AppSocket["nsp"]["adapter"];

/** Socket.IO's Client.writeToEngine (what its adapter's broadcast calls): typed private, stable since 4.0. */
interface PreEncodedWriter {
  writeToEngine(packet: string, options: { preEncoded: true; compress: boolean }): void;
}

/** Relays streams to sockets, and cuts off sockets that stop reading. */
export class SocketRelay {
  /** Per socket: stream key → the Socket.IO room whose leaving stops it (`follow`'s `whileIn`). */
  private readonly ties = new WeakMap<AppSocket, Map<string, string>>();
  /** Adapters already watched for sockets leaving rooms (a new one replaces it when Redis is set up). */
  private readonly watched = new WeakSet<RoomAdapter>();
  /** The packet of the item relayed last: its listeners run one after another, so one entry serves them all. */
  private lastPacket: { json: string; event: string; nsp: string; packet: string } | null = null;

  constructor(
    private readonly relay: StreamRelay,
    private readonly bufferLimitBytes: number,
    private readonly metrics: MessageMetrics,
  ) {}

  /**
   * Starts (or restarts, replaying after `after`: a message id, or a position already
   * read) relaying a stream to the socket as `event`. `check` (may the socket follow it?) runs in turn with the socket's other
   * changes to that stream, so they apply in the order the client asked.
   * `options.present`, when given, shapes each item before it is emitted (a pair room adds
   * its room_id). With `options.whileIn` (a Socket.IO room the socket is in), relaying stops
   * as soon as the socket leaves that room, however it is made to: `SocketDelivery.leave`
   * does so on every process.
   */
  follow(
    socket: AppSocket,
    key: string,
    event: keyof ServerToClientEvents,
    after?: string | ResumePoint,
    check?: () => Promise<void>,
    options: { present?: (item: StreamItem) => object; whileIn?: string } = {},
  ): Promise<void> {
    const { present, whileIn } = options;
    return this.change(socket, key, async () => {
      await check?.();
      const from = typeof after === "object" ? after : await this.relay.resumePoint(key, after);
      this.stop(socket, key);
      const stop = await this.relay.listen(key, this.relayTo(socket, event, present), {
        from,
        signal: socket.data.gone,
        ready: () => this.ready(socket),
      });
      if (socket.disconnected || (whileIn !== undefined && !socket.rooms.has(whileIn))) return stop();
      socket.data.streams.set(key, stop);
      if (whileIn !== undefined) this.tie(socket, key, whileIn);
    });
  }

  /**
   * The listener a follow leaves behind, made here so that it holds only the socket, the
   * event and the shaping, not what the follow was started with: ten thousand sockets keep one.
   */
  private relayTo(socket: AppSocket, event: keyof ServerToClientEvents, present?: (item: StreamItem) => object): (item: StreamItem, json: string) => void {
    // An item shaped per stream (`present`) is encoded for that socket; a plain one shares its packet.
    return present ? (item) => this.counted(this.emit(socket, event, present(item))) : (_item, json) => this.counted(this.emitJson(socket, event, json));
  }

  /** Counts an item the relay wrote to a socket (not the lobby's replies, which also go through emitJson). */
  private counted(written: boolean): void {
    if (written) this.metrics.delivered("socket.io");
  }

  unfollow(socket: AppSocket, key: string): Promise<void> {
    return this.change(socket, key, async () => this.stop(socket, key));
  }

  unfollowAll(socket: AppSocket): void {
    socket.data.gone.aborted = true;
    for (const stop of socket.data.streams.values()) stop();
    socket.data.streams.clear();
  }

  private stop(socket: AppSocket, key: string): void {
    socket.data.streams.get(key)?.();
    socket.data.streams.delete(key);
    this.ties.get(socket)?.delete(key);
  }

  private tie(socket: AppSocket, key: string, room: string): void {
    let ties = this.ties.get(socket);
    if (!ties) this.ties.set(socket, (ties = new Map()));
    ties.set(key, room);
    const adapter = socket.nsp.adapter;
    if (this.watched.has(adapter)) return;
    this.watched.add(adapter);
    // One listener per adapter, not per socket: the adapter says who left which room.
    adapter.on("leave-room", (left: string, id: string) => {
      const gone = adapter.nsp.sockets.get(id) as AppSocket | undefined;
      const tied = gone && this.ties.get(gone);
      if (!tied) return;
      for (const [tiedKey, tiedRoom] of tied) if (tiedRoom === left) void this.unfollow(gone, tiedKey);
    });
  }

  /** Runs the change after those already queued for the same stream on this socket. */
  private change(socket: AppSocket, key: string, step: () => Promise<void>): Promise<void> {
    // Only while changes are pending: most sockets have none most of the time.
    const changes = (socket.data.changes ??= new Map());
    const run = (changes.get(key) ?? Promise.resolve()).then(step);
    const settled = run.catch(() => undefined);
    changes.set(key, settled);
    void settled.then(() => {
      if (changes.get(key) !== settled) return;
      changes.delete(key);
      if (changes.size === 0 && socket.data.changes === changes) socket.data.changes = undefined;
    });
    return run;
  }

  /** A stream's item, shaped for this socket (its type is the stream's, not checked here). */
  private emit(socket: AppSocket, event: keyof ServerToClientEvents, item: object): boolean {
    if (this.buffered(socket) > this.bufferLimitBytes) {
      this.cutOff(socket);
      return false;
    }
    return (socket.emit as (event: string, item: object) => boolean)(event, item);
  }

  /**
   * As `emit`, for an item the relay already serialized: the Socket.IO packet is built
   * once per item (not once per socket) and written as is, as Socket.IO's own broadcast
   * does. Only plain JSON items (no binary), which is all a stream carries. Consecutive
   * calls with the same string (one item to many sockets) share the packet.
   */
  emitJson(socket: AppSocket, event: keyof ServerToClientEvents, json: string): boolean {
    if (this.buffered(socket) > this.bufferLimitBytes) {
      this.cutOff(socket);
      return false;
    }
    // socket.emit drops a packet for a connection that is not open; so does this.
    if (socket.conn.readyState !== "open") return false;
    const nsp = socket.nsp.name;
    let last = this.lastPacket;
    if (!last || last.json !== json || last.event !== event || last.nsp !== nsp) {
      // socket.io-parser's encoding of an EVENT packet without an ack id.
      const packet = `2${nsp === "/" ? "" : `${nsp},`}[${JSON.stringify(event)},${json}]`;
      last = this.lastPacket = { json, event, nsp, packet };
    }
    (socket.client as unknown as PreEncodedWriter).writeToEngine(last.packet, { preEncoded: true, compress: true });
    return true;
  }

  /** For replays: a promise while the socket has much unsent (see StreamRelay's `ready`). */
  private ready(socket: AppSocket): Promise<void> | undefined {
    return belowThreshold(
      () => this.buffered(socket),
      this.bufferLimitBytes / 2,
      () => socket.disconnected,
      () => this.cutOff(socket),
    );
  }

  /** Disconnects a client that stopped reading, dropping what it left unread at once. */
  private cutOff(socket: AppSocket): void {
    if (socket.connected) this.metrics.cutOff("socket.io");
    socket.disconnect(true);
    // engine.io would otherwise wait for the unread output to drain (until the ping timeout).
    socket.conn.close(true);
    (socket.conn.transport as unknown as { socket?: { terminate?: () => void } }).socket?.terminate?.();
  }

  /** Bytes waiting to reach the client: in the WebSocket, and queued in engine.io (all that polling has). */
  private buffered(socket: AppSocket): number {
    const transport = socket.conn.transport as unknown as { socket?: { bufferedAmount?: number } };
    const queued = (socket.conn as unknown as { writeBuffer?: Array<{ data?: unknown }> }).writeBuffer ?? [];
    let bytes = transport.socket?.bufferedAmount ?? 0;
    for (const packet of queued) bytes += typeof packet.data === "string" ? packet.data.length : 64;
    return bytes;
  }
}
