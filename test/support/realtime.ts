import http from "node:http";
import { io, type Socket } from "socket.io-client";

/** Connects a Socket.IO client; rejects with the connect_error message. */
export function connectSocket(url: string, auth: Record<string, unknown>): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = io(url, { auth, transports: ["websocket"], reconnection: false, forceNew: true });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (error) => {
      socket.close();
      reject(error);
    });
  });
}

export function emitWithAck<T = any>(socket: Socket, event: string, payload?: unknown): Promise<T> {
  return socket.timeout(10_000).emitWithAck(event, payload);
}

/** Collects events of one name; `next(n)` waits until n have arrived. */
export function collect<T = any>(socket: Socket, event: string) {
  const items: T[] = [];
  let waiters: Array<() => void> = [];
  socket.on(event, (item: T) => {
    items.push(item);
    for (const w of waiters) w();
  });
  return {
    items,
    async next(count: number, timeoutMs = 10_000): Promise<T[]> {
      const deadline = Date.now() + timeoutMs;
      while (items.length < count) {
        if (Date.now() > deadline) throw new Error(`expected ${count} ${event} events, got ${items.length}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 100);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        waiters = [];
      }
      return items.slice(0, count);
    },
  };
}

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/** A minimal Server-Sent Events client over a raw HTTP request, so tests see every byte. */
export function openSse(url: string, headers: Record<string, string> = {}) {
  const events: SseEvent[] = [];
  let buffer = "";
  let response: http.IncomingMessage | undefined;
  const ready = new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get(url, { headers: { accept: "text/event-stream", ...headers } }, (res) => {
      response = res;
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event: SseEvent = { data: "" };
          let isEvent = false;
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const [field, ...rest] = line.split(":");
            const value = rest.join(":").replace(/^ /, "");
            if (field === "id") event.id = value;
            else if (field === "event") event.event = value;
            else if (field === "data") {
              event.data += value;
              isEvent = true;
            }
          }
          if (isEvent) events.push(event);
        }
      });
      resolve(res);
    });
    req.on("error", reject);
  });
  return {
    ready,
    events,
    messages: () => events.filter((e) => e.event === "message").map((e) => JSON.parse(e.data)),
    async waitFor(count: number, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (events.length < count) {
        if (Date.now() > deadline) throw new Error(`expected ${count} SSE events, got ${events.length}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return events.slice(0, count);
    },
    close() {
      response?.destroy();
    },
  };
}
