/**
 * The chat benchmark's memory reference (started by bench/chat.ts, never run by hand): a
 * plain Socket.IO server with its defaults, the least a server can do for the same
 * clients. Any handshake is accepted; `chat:subscribe` joins the channel's room and acks.
 * No database, no accounts, no relay, no resume: what Convene keeps per socket beyond
 * this is what the ratio measures. Prints `listening <port>` on stdout once it listens.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";

const server = http.createServer((_req, res) => res.writeHead(404).end());
const io = new Server(server);
io.on("connection", (socket) => {
  socket.on("chat:subscribe", (payload: { channel_id?: unknown } | undefined, ack?: (answer: object) => void) => {
    const channel = String(payload?.channel_id);
    void socket.join(`channel:${channel}`);
    ack?.({ ok: true, channel_id: channel });
  });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`));
