import type http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/**
 * The requests not answered yet, and whether the server is draining. Counted per
 * response, ended by the response's "close" or by its connection's: a response queued
 * behind another on a pipelined connection (behind an event stream, say) never emits
 * "close" when the connection goes first. Counted here rather than read from the server's
 * "close" event: a cluster worker receives its connections from the primary and never
 * listens itself.
 */
export class InFlight {
  private draining = false;
  private readonly open = new Set<ServerResponse>();
  private readonly bySocket = new WeakMap<Socket, Set<ServerResponse>>();
  private waiters: Array<() => void> = [];

  /** Call before Socket.IO is attached: its long-polls are Socket.IO's to end, not requests to wait for. */
  attach(server: http.Server): void {
    // Before the app's listener, which may answer at once (Connection: close must be set first).
    server.prependListener("request", (req: IncomingMessage, res: ServerResponse) => this.track(req.socket as Socket, res));
  }

  get size(): number {
    return this.open.size;
  }

  isDraining(): boolean {
    return this.draining;
  }

  /** From now on every response closes its connection (`Connection: close`), those under way included. */
  startDraining(): void {
    this.draining = true;
    for (const res of this.open) if (!res.headersSent) res.setHeader("Connection", "close");
  }

  /** Resolves when no request is in flight. */
  drained(): Promise<void> {
    return this.open.size === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }

  private track(socket: Socket, res: ServerResponse): void {
    if (this.draining && !res.headersSent) res.setHeader("Connection", "close");
    this.open.add(res);
    let responses = this.bySocket.get(socket);
    if (!responses) {
      const set = new Set<ServerResponse>();
      responses = set;
      this.bySocket.set(socket, set);
      socket.once("close", () => {
        for (const queued of set) this.done(queued);
        set.clear();
      });
    }
    responses.add(res);
    res.once("close", () => {
      responses.delete(res);
      this.done(res);
    });
  }

  private done(res: ServerResponse): void {
    if (!this.open.delete(res) || this.open.size > 0) return;
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
