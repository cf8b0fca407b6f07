import { DomainError } from "../../core/errors";
import { toProblem } from "../../core/problems";
import type { Principal } from "../../core/principal";
import type { Connections } from "../../realtime/connections";
import type { StreamRelay } from "../../realtime/stream-relay";
import { USER_PRINCIPAL, toPrincipal, type UserPrincipal } from "../accounts";
import { INVALID_MESSAGE, NOT_AUTHENTICATED, NOT_AUTHORIZED, type ClientMessage, type LobbyEvent, type ServerMessage } from "./lobby.protocol";
import { LOBBY_STREAM, LobbyFailure, type LobbyChange, type LobbyService } from "./lobby.service";

export interface SessionDoor {
  send(message: ServerMessage): void;
  /** The login's credentials ended (a password change, a deletion): close the connection. */
  end(): void;
  /** The client's address: where its wrong passwords are counted. */
  address: string;
  log: { error(obj: object, msg: string): void };
}

/** How long a subscribed changer's next message waits for its change's event. */
const DELIVERY_WAIT_MS = 2000;
const PRIVILEGED = new Set(["add_table", "update_table", "remove_table"]);

/**
 * One client's lobby conversation, the same on the WebSocket and Socket.IO doors:
 * messages are handled one at a time, in order, and so are their answers.
 */
export class LobbySession {
  private principal: UserPrincipal | null = null;
  private admin = false;
  /** The account being read again after a change: privileged commands wait for it. */
  private rereading: Promise<void> | null = null;
  private unregister: (() => void) | null = null;
  private unsubscribe: (() => void) | null = null;
  private subscribed = false;
  private closed = false;
  private chain: Promise<void> = Promise.resolve();
  /** The version of the last event the subscription delivered, and who waits for one. */
  private delivered = 0;
  private waiting: (() => void) | null = null;

  constructor(
    private readonly lobby: LobbyService,
    private readonly relay: StreamRelay,
    private readonly connections: Connections,
    private readonly door: SessionDoor,
  ) {}

  /** Signs the session in as an already authenticated principal (a Socket.IO socket's). */
  signIn(principal: Principal): void {
    if (principal.kind !== USER_PRINCIPAL) return;
    this.setPrincipal(principal as UserPrincipal);
  }

  /** Queues a parsed message (an invalid one is the door's to answer). */
  handle(message: ClientMessage): void {
    this.chain = this.chain.then(() => this.run(message)).catch((error: unknown) => {
      const { problem, headers } = toProblem(error);
      // Not the client's fault and not a bug: say when to send it again.
      if (problem.status === 503) return this.send({ $type: "service_unavailable", retry_after: Number(headers["Retry-After"] ?? 5), message: problem.detail });
      this.door.log.error({ err: error }, "lobby message failed");
      this.send(INVALID_MESSAGE);
    });
  }

  /** Answers a frame that was no message, in its turn among the others. */
  reject(): void {
    this.chain = this.chain.then(() => this.send(INVALID_MESSAGE));
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.subscribed = false;
    this.unregister?.();
    this.unregister = null;
  }

  private send(message: ServerMessage): void {
    if (!this.closed) this.door.send(message);
  }

  private setPrincipal(principal: UserPrincipal): void {
    this.unregister?.();
    this.principal = principal;
    this.admin = principal.user.userType === "admin";
    this.unregister = this.connections.add({
      principal,
      end: () => this.door.end(),
      changed: () => this.refresh(),
    });
    // Changed (a demotion) while the password was being checked: read the type again.
    if (this.connections.changedSince(principal, principal.checkedAt)) this.refresh();
  }

  /**
   * The account changed: read it again, so a demoted admin loses the rights at once. The
   * row read becomes the principal's, so the next check of the credentials (a resync)
   * compares against it and reports a change once, not at every look.
   */
  private refresh(): void {
    const principal = this.principal;
    if (!principal) return;
    // Until the read answers, no privileged command passes.
    this.admin = false;
    const readAt = Date.now();
    const reread = this.lobby
      .currentUser(principal.id)
      .then((user) => {
        if (this.principal !== principal || this.closed) return;
        // Gone, or (a password login) its password changed meanwhile: the login ends.
        if (!user || (principal.sessionId === null && user.passwordHash !== principal.user.passwordHash)) return this.door.end();
        this.setPrincipal(toPrincipal(user, principal.sessionId, principal.expiresAt, readAt));
      })
      .catch((error: unknown) => this.door.log.error({ err: error }, "could not read a lobby user's type"));
    this.rereading = reread;
    void reread.finally(() => {
      if (this.rereading === reread) this.rereading = null;
    });
  }

  private async run(message: ClientMessage): Promise<void> {
    if (this.closed) return;
    if (message.$type === "ping") return this.send({ $type: "pong", seq: message.seq });
    if (message.$type === "login") return this.login(message.username, message.password);
    if (!this.principal) return this.send(NOT_AUTHENTICATED);
    if (PRIVILEGED.has(message.$type)) {
      // A change is being read (a promotion or a demotion): the command is judged by what it finds.
      while (this.rereading) await this.rereading;
      if (!this.admin) return this.send(NOT_AUTHORIZED);
    }
    switch (message.$type) {
      case "subscribe_tables":
        return this.subscribe();
      case "unsubscribe_tables":
        this.unsubscribe?.();
        this.unsubscribe = null;
        this.subscribed = false;
        return;
      case "add_table":
        return this.change(() => this.lobby.add(message.after_id, message.table));
      case "update_table":
        return this.change(() => this.lobby.update(message.table));
      case "remove_table":
        return this.change(() => this.lobby.remove(message.id));
    }
  }

  private async login(username: string, password: string): Promise<void> {
    const checkedAt = Date.now();
    let user;
    try {
      user = await this.lobby.checkLogin(username, password, this.door.address);
    } catch (error) {
      // Over the address's budget of wrong passwords: refused unchecked; the login (if any) stays.
      if (error instanceof DomainError && error.status === 429) return this.send({ ...NOT_AUTHENTICATED, message: error.message });
      throw error;
    }
    if (!user) return this.send({ $type: "login_failed" });
    // A password login: no session, no expiry.
    this.setPrincipal(toPrincipal(user, null, null, checkedAt));
    this.send({ $type: "login_successful", user_type: user.userType });
  }

  private async subscribe(): Promise<void> {
    // Subscribing again starts again: a fresh list, then the changes after it.
    this.unsubscribe?.();
    this.unsubscribe = null;
    const list = await this.lobby.list();
    if (this.closed) return;
    this.send(list);
    this.subscribed = true;
    const at = String(list.version);
    this.delivered = list.version;
    const deliver = (item: LobbyChange) => {
      this.delivered = item.event.version;
      this.send(item.event);
      this.waiting?.();
    };
    const stop = await this.relay.listen<LobbyChange>(LOBBY_STREAM, deliver, { from: { after: at, last: at } });
    if (this.closed || !this.subscribed) stop();
    else this.unsubscribe = stop;
  }

  private async delivery(version: number): Promise<void> {
    const deadline = Date.now() + DELIVERY_WAIT_MS;
    while (this.subscribed && !this.closed && this.delivered < version && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiting = null;
    }
  }

  private async change(apply: () => Promise<LobbyEvent>): Promise<void> {
    try {
      const event = await apply();
      // A subscriber gets it from the stream; anyone else gets it once, as the answer.
      if (!this.subscribed) this.send(event);
      // ...before what the client sends next is answered (bounded: a lost event is repaired later).
      else await this.delivery(event.version);
    } catch (error) {
      if (error instanceof LobbyFailure) this.send(error.body);
      else throw error;
    }
  }
}
