/**
 * The lobby benchmark's reference (started by bench/lobby.ts, never run by hand): the
 * least a server can do for the same clients, a plain `ws` broadcast server that speaks
 * enough of the `/lobby_api` protocol. Any login succeeds (`admin` is the admin), tables
 * live in a Map, each change gets the next version and is serialised once and the same
 * buffer written to every subscriber. No database, no accounts, no ordering across
 * processes, no pings: what Convene adds is what the ratios measure.
 * Prints `listening <port>` on stdout once it listens.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";

interface Table {
  id: number;
  name: string;
  participants: number;
}

const tables = new Map<number, Table>();
const subscribers = new Set<WebSocket>();
let version = 0;

function broadcast(event: object & { version: number }): Buffer {
  const frame = Buffer.from(JSON.stringify(event));
  for (const ws of subscribers) ws.send(frame, { binary: false });
  return frame;
}

/** Applies a change; the event, or the failure answer. */
function change(message: Record<string, unknown>): object | { failure: object } {
  const table = message.table as Table | undefined;
  switch (message.$type) {
    case "add_table": {
      const afterId = message.after_id as number;
      if (!table || (afterId !== -1 && !tables.has(afterId)) || tables.has(table.id)) return { failure: { $type: "addition_failed", after_id: afterId } };
      tables.set(table.id, { id: table.id, name: table.name, participants: table.participants });
      return { $type: "table_added", after_id: afterId, table: tables.get(table.id), version: ++version };
    }
    case "update_table":
      if (!table || !tables.has(table.id)) return { failure: { $type: "update_failed", id: table?.id } };
      tables.set(table.id, { id: table.id, name: table.name, participants: table.participants });
      return { $type: "table_updated", table: tables.get(table.id), version: ++version };
    default: {
      const id = message.id as number;
      if (!tables.delete(id)) return { failure: { $type: "removal_failed", id } };
      return { $type: "table_removed", id, version: ++version };
    }
  }
}

const server = http.createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server, path: "/lobby_api", maxPayload: 1024 * 1024 });
wss.on("connection", (ws) => {
  let admin = false;
  ws.on("message", (data) => {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(data.toString()) as Record<string, unknown>;
    } catch {
      ws.send(JSON.stringify({ $type: "invalid_message" }));
      return;
    }
    switch (message.$type) {
      case "login":
        admin = message.username === "admin";
        ws.send(JSON.stringify({ $type: "login_successful", user_type: admin ? "admin" : "user" }));
        return;
      case "ping":
        ws.send(JSON.stringify({ $type: "pong", seq: message.seq }));
        return;
      case "subscribe_tables":
        ws.send(JSON.stringify({ $type: "table_list", tables: [...tables.values()], version }));
        subscribers.add(ws);
        return;
      case "unsubscribe_tables":
        subscribers.delete(ws);
        return;
      case "add_table":
      case "update_table":
      case "remove_table": {
        if (!admin) return ws.send(JSON.stringify({ $type: "not_authorized" }));
        const result = change(message);
        if ("failure" in result) return ws.send(JSON.stringify(result.failure));
        const frame = broadcast(result as { version: number });
        if (!subscribers.has(ws)) ws.send(frame, { binary: false });
        return;
      }
      default:
        ws.send(JSON.stringify({ $type: "invalid_message" }));
    }
  });
  ws.on("close", () => subscribers.delete(ws));
  ws.on("error", () => undefined);
});

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on("SIGTERM", () => {
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
