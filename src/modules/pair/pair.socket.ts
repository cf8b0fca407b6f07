import { notFound } from "../../core/errors";
import { socketHandlers, type Kernel, type SocketFace } from "../../core/module";
import { defineSocketEvents, type ClientEventsOf, type ServerEventsOf } from "../../realtime/events";
import { checkSignalSize, DeliveredResult, principalRoom, setSocketState, socketState, type AppSocket, type SocketRelay } from "../../realtime/socket-server";
import type { ResumePoint, StreamItem } from "../../realtime/stream-relay";
import { PairSignalPayload, PairIncomingCallSchema, PairMessageSchema, PairSignalSchema } from "./pair.schemas";
import { asPair, PAIR_PRINCIPAL, type PairService } from "./pair.service";

/** The pair module's Socket.IO events: its handlers, its AsyncAPI channels and its typed events come from here. */
export const pairEvents = defineSocketEvents({
  requests: {
    "pair:signal": {
      summary: "Relay signaling data (a JSON object up to 64 KiB) to the other member's sockets, on any process; not stored",
      payload: PairSignalPayload,
      result: DeliveredResult,
    },
  },
  emits: {
    "pair:incoming_call": { summary: "Someone connected to you (`POST /pair/users/:publicId/connect`): their room with you", payload: PairIncomingCallSchema },
    "pair:message": { summary: "A message in one of your pair rooms (all followed from connecting; ordered, none missed; live only)", payload: PairMessageSchema },
    "pair:signal": { summary: "Signaling data from the other member of a pair room", payload: PairSignalSchema },
  },
});

declare module "../../realtime/events" {
  interface ClientToServerEvents extends ClientEventsOf<typeof pairEvents> {}
  interface ServerToClientEvents extends ServerEventsOf<typeof pairEvents> {}
}

/** Bus topic: a pair room was opened or closed, so its members' sockets on every process follow it or stop. */
export const PAIR_ROOMS_TOPIC = "pair:rooms";
export interface PairRoomsEvent {
  type: "opened" | "closed";
  roomId: string;
  members: string[];
}

const STATE = "pair";
/** Identities whose rooms one resync query reads. */
const RESYNC_BATCH = 500;
/** Per socket: the rooms asked for (so none is followed twice), resume points read at the handshake, and rooms opened before it connected. */
interface PairSocketState {
  following: Set<string>;
  /** Room id → where to start: a resume point read at the handshake, or "0" for a room opened since. */
  from: Map<string, ResumePoint | string>;
  sockets: SocketRelay | null;
}

/**
 * A pair identity follows all its rooms without asking (API.md has no pair subscribe
 * event): every room it is in at the handshake, from the position read then, and every
 * room opened while it is connected, from its start. `pair:message` goes through the
 * shared ordered relay, so it arrives once, in order, with gaps repaired from the
 * database, on whichever process the socket is.
 */
export class PairFollowers {
  /** This process' pair sockets, by identity id. */
  private readonly members = new Map<string, Set<AppSocket>>();

  constructor(
    private readonly pair: PairService,
    private readonly kernel: Kernel,
  ) {}

  start(): Promise<void> {
    this.kernel.bus.onResync(() => this.resync());
    return this.kernel.bus.subscribe(PAIR_ROOMS_TOPIC, (event) => this.receive(event as PairRoomsEvent));
  }

  /**
   * Rooms opened or closed while the bus lost their events (Redis down): every connected
   * identity's rooms are read again, a new one followed from its start, a gone one left.
   */
  async resync(): Promise<void> {
    const ids = [...this.members.keys()];
    for (let i = 0; i < ids.length; i += RESYNC_BATCH) {
      const batch = ids.slice(i, i + RESYNC_BATCH);
      // What each socket followed before the read: a room opened while the query ran (its
      // event followed at once) is not in the answer, and must not be left for that.
      const before = new Map<AppSocket, string[]>();
      for (const id of batch) for (const socket of this.members.get(id) ?? []) before.set(socket, [...(this.state(socket)?.following ?? [])]);
      for (const [id, roomIds] of await this.pair.roomsOf(batch)) {
        const keys = new Set(roomIds.map((roomId) => this.pair.rooms.key(roomId)));
        for (const socket of this.members.get(id) ?? []) {
          const state = this.state(socket);
          if (!state?.sockets) continue;
          for (const roomId of roomIds) this.follow(socket, state, roomId, "0");
          for (const key of before.get(socket) ?? []) {
            if (keys.has(key) || !state.following.has(key)) continue;
            state.following.delete(key);
            state.sockets.unfollow(socket, key).catch(() => undefined);
          }
        }
      }
    }
  }

  publish(event: PairRoomsEvent): Promise<void> {
    return this.kernel.bus.publish(PAIR_ROOMS_TOPIC, event);
  }

  /** Registered before the rooms are read, so a room opened meanwhile reaches it through `receive`. */
  async handshake(socket: AppSocket): Promise<void> {
    const me = asPair(socket.data.principal);
    if (!me) return;
    const state: PairSocketState = { following: new Set(), from: new Map(), sockets: null };
    setSocketState(socket, STATE, state);
    let set = this.members.get(me.id);
    if (!set) this.members.set(me.id, (set = new Set()));
    set.add(socket);
    try {
      for (const roomId of await this.pair.roomIds(me.id)) {
        if (state.from.has(roomId)) continue;
        state.from.set(roomId, await this.kernel.relay.resumePoint(this.pair.rooms.key(roomId), undefined));
      }
    } catch (error) {
      this.forget(socket);
      throw error;
    }
  }

  connected(socket: AppSocket, sockets: SocketRelay): void {
    const state = this.state(socket);
    if (!state) return;
    state.sockets = sockets;
    for (const [roomId, from] of state.from) this.follow(socket, state, roomId, from);
    state.from.clear();
  }

  forget(socket: AppSocket): void {
    const me = socket.data.principal;
    const set = this.members.get(me.id);
    set?.delete(socket);
    if (set?.size === 0) this.members.delete(me.id);
  }

  private receive(event: PairRoomsEvent): void {
    for (const member of event.members) {
      for (const socket of this.members.get(member) ?? []) {
        const state = this.state(socket);
        if (!state) continue;
        const key = this.pair.rooms.key(event.roomId);
        if (event.type === "closed") {
          state.from.delete(event.roomId);
          if (state.following.delete(key)) state.sockets?.unfollow(socket, key).catch(() => undefined);
        } else if (state.sockets) {
          // A new room: from its very start, so nothing posted before this arrived is missed.
          this.follow(socket, state, event.roomId, "0");
        } else if (!state.from.has(event.roomId)) {
          state.from.set(event.roomId, "0");
        }
      }
    }
  }

  private follow(socket: AppSocket, state: PairSocketState, roomId: string, from: ResumePoint | string): void {
    const key = this.pair.rooms.key(roomId);
    if (state.following.has(key) || !state.sockets) return;
    state.following.add(key);
    const present = (message: StreamItem) => ({ ...message, room_id: roomId });
    state.sockets.follow(socket, key, "pair:message", from, undefined, { present }).catch((error: unknown) => {
      this.kernel.log.error({ err: error }, "could not relay a pair room to a socket");
      socket.disconnect(true);
    });
  }

  private state(socket: AppSocket): PairSocketState | undefined {
    return socketState<PairSocketState>(socket, STATE);
  }
}

/** pair:signal {roomId, data}: relayed to the other member's sockets; and the rooms followed as above. */
export function pairSocketFace(pair: PairService, kernel: Kernel, followers: PairFollowers): SocketFace {
  return {
    handshake: (socket) => followers.handshake(socket),
    onConnect: (socket, sockets) => followers.connected(socket, sockets),
    onDisconnect: (socket) => {
      if (asPair(socket.data.principal)) followers.forget(socket);
    },
    events: pairEvents,
    handlers: socketHandlers(pairEvents.requests, {
      async "pair:signal"(socket, { roomId, data }) {
        const me = asPair(socket.data.principal);
        if (!me) throw notFound("No such pair room.");
        checkSignalSize(data);
        const room = await pair.room(me, roomId);
        const other = room.a_id === me.id ? room.b_id : room.a_id;
        const delivered = await kernel.sockets.emit(principalRoom({ kind: PAIR_PRINCIPAL, id: other }), "pair:signal", {
          roomId,
          from: { publicId: me.publicId, username: me.name },
          data,
        });
        return { delivered };
      },
    }),
  };
}
