import http from "node:http";
import net from "node:net";

/** Helpers for the drain tests: raw connections, kept-alive requests, a login sent slowly. */

export interface RawConnection {
  socket: net.Socket;
  received(): string;
  /** Resolves when the server closes the connection, with everything it sent. */
  closed: Promise<string>;
}

export function rawConnect(url: string): Promise<RawConnection> {
  const { port, hostname } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: Number(port), host: hostname });
    let text = "";
    socket.on("data", (d) => (text += d.toString("latin1")));
    const closed = new Promise<string>((done) => socket.on("close", () => done(text)));
    socket.once("connect", () => {
      socket.on("error", () => undefined);
      resolve({ socket, received: () => text, closed });
    });
    socket.once("error", reject);
  });
}

export interface Answer {
  status: number;
  connection: string | undefined;
  body: string;
  /** The request went out on a connection kept alive from an earlier one. */
  reused: boolean;
}

export function get(url: string, agent: http.Agent | false, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body, reused: req.reusedSocket }));
    });
    req.on("error", reject);
  });
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A login whose body is sent in two halves, `gapMs` apart; resolves with the raw answer. */
export async function slowLogin(url: string, credentials: { username: string; password: string }, gapMs: number): Promise<{ sent: Promise<void>; answer: Promise<string> }> {
  const c = await rawConnect(url);
  const body = JSON.stringify(credentials);
  const half = Math.floor(body.length / 2);
  c.socket.write(`POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, half)}`);
  const sent = new Promise<void>((resolve) => setTimeout(() => {
    c.socket.write(body.slice(half));
    resolve();
  }, gapMs));
  return { sent, answer: c.closed.then((text) => text || c.received()) };
}

export const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);

/** Resolves true once nothing accepts connections at `url` any more. */
export async function refusesConnections(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const refused = await rawConnect(url).then((c) => (c.socket.destroy(), false), () => true);
    if (refused) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
