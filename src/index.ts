/**
 * The package's public types, for clients written in TypeScript:
 * `import type { ClientToServerEvents, ServerToClientEvents } from "convene"`, then
 * `const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, { auth: { token } })`.
 */
export type { AckAnswer, AckError, ClientToServerEvents, ServerToClientEvents } from "./realtime/events";

// Each module merges its events into those interfaces where it declares them; declaration
// files keep these imports, so a client's compiler sees every event.
import "./modules/chat/chat.socket";
import "./modules/rooms/rooms.socket";
import "./modules/pair/pair.socket";
import "./modules/lobby/lobby.socket";
