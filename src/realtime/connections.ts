import { LRUCache } from "lru-cache";
import type { Logger } from "../logger";
import { endsConnection, principalKey, PRINCIPALS_TOPIC, type Principal, type PrincipalEvent } from "../core/principal";
import type { Bus } from "./bus";

/** A live connection on any door (an SSE stream, a Socket.IO socket, a lobby WebSocket). */
export interface Connection {
  principal: Principal;
  /** Closes the connection: its credentials ended. */
  end(): void;
  /** The principal's rights or profile changed: look again (a demoted admin's lobby login). */
  changed?(): void;
}

/** How long an ending is remembered, for verifications that were under way when it happened. */
const REMEMBER_MS = 20_000;
/** Principals per credential check (one database query or two). */
const CHECK_BATCH = 500;

/** What a re-read from the database says of a principal's credentials. */
export type Standing = "valid" | "ended" | "changed";

/**
 * How the module that issues a kind of principal re-reads their credentials from the
 * database, for when the bus may have lost its events: a standing per principal, in order.
 */
export type CredentialCheck = (principals: Principal[]) => Promise<Standing[]>;

/**
 * The one mechanism that ends connections when their credentials end, on every door
 * and every process. Modules publish principal events; each process applies them to
 * its own connections, and remembers them briefly so that a connection whose
 * credentials were checked just before the event (and registered just after) ends too.
 */
export class Connections {
  /** By principal: its one connection, or a Set when it has several (most have one: no Set for each). */
  private readonly open = new Map<string, Connection | Set<Connection>>();
  private readonly recent = new LRUCache<string, { at: number; keep: string | null }>({ max: 100_000, ttl: REMEMBER_MS });
  private readonly listeners: Array<(event: PrincipalEvent) => void> = [];
  private readonly checks = new Map<string, CredentialCheck>();

  constructor(
    private readonly bus: Bus,
    private readonly log: Logger,
  ) {}

  start(): Promise<void> {
    this.bus.onResync(() => this.recheck());
    return this.bus.subscribe(PRINCIPALS_TOPIC, (event) => this.apply(event as PrincipalEvent));
  }

  /**
   * Whether events from the other processes reach this one now. While they do not, a
   * cached verification may be stale: doors ask the database instead.
   */
  get live(): boolean {
    return this.bus.up;
  }

  /** The module that issues `kind` says how to re-read its credentials (see `recheck`). */
  addCheck(kind: string, check: CredentialCheck): void {
    this.checks.set(kind, check);
  }

  /**
   * Re-reads every open connection's credentials from the database and ends those that
   * ended (logged out, password changed, deleted) or tells those that changed (demoted):
   * the bus runs this while it is down and once it is back, so an event it lost cannot
   * leave a connection open.
   */
  async recheck(): Promise<void> {
    const byKind = new Map<string, Connection[]>();
    for (const entry of this.open.values())
      for (const connection of entry instanceof Set ? entry : [entry]) {
        const kind = connection.principal.kind;
        if (!this.checks.has(kind)) continue;
        const list = byKind.get(kind);
        if (list) list.push(connection);
        else byKind.set(kind, [connection]);
      }
    for (const [kind, connections] of byKind) {
      const check = this.checks.get(kind)!;
      for (let i = 0; i < connections.length; i += CHECK_BATCH) {
        const batch = connections.slice(i, i + CHECK_BATCH);
        const standings = await check(batch.map((c) => c.principal));
        batch.forEach((connection, j) => this.settle(connection, standings[j]));
      }
    }
  }

  private settle(connection: Connection, standing: Standing | undefined): void {
    try {
      if (standing === "ended") connection.end();
      else if (standing === "changed") connection.changed?.();
    } catch (error) {
      this.log.error({ err: error }, "could not end or update a connection");
    }
  }

  /** Applies the event to this process at once, then tells the others. */
  publish(event: PrincipalEvent): Promise<void> {
    this.apply(event);
    return this.bus.publish(PRINCIPALS_TOPIC, event);
  }

  /** Runs for every event, local or from another process (caches of credentials). */
  onEvent(listener: (event: PrincipalEvent) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Registers a connection; returns the function that unregisters it. A connection whose
   * credentials ended after they were checked is ended at once.
   */
  add(connection: Connection): () => void {
    const key = principalKey(connection.principal);
    const existing = this.open.get(key);
    if (existing === undefined) this.open.set(key, connection);
    else if (existing instanceof Set) existing.add(connection);
    else this.open.set(key, new Set([existing, connection]));
    const remove = () => {
      const current = this.open.get(key);
      if (current === connection) this.open.delete(key);
      else if (current instanceof Set && current.delete(connection) && current.size === 0) this.open.delete(key);
    };
    if (this.revokedSince(connection.principal, connection.principal.checkedAt)) {
      remove();
      connection.end();
    }
    return remove;
  }

  /** Whether the principal's credentials ended after `since`. */
  revokedSince(principal: Pick<Principal, "kind" | "id" | "sessionId">, since: number): boolean {
    const session = principal.sessionId ? this.recent.get(`session:${principal.kind}:${principal.sessionId}`) : undefined;
    if (session && session.at >= since) return true;
    const all = this.recent.get(`ended:${principalKey(principal)}`);
    return all !== undefined && all.at >= since && (principal.sessionId === null || all.keep !== principal.sessionId);
  }

  /** Whether the principal changed or ended after `since` (a cached verification is stale). */
  changedSince(principal: Pick<Principal, "kind" | "id">, since: number): boolean {
    const changed = this.recent.get(`changed:${principalKey(principal)}`);
    return changed !== undefined && changed.at >= since;
  }

  /** Connections on this process. */
  get size(): number {
    let count = 0;
    for (const entry of this.open.values()) count += entry instanceof Set ? entry.size : 1;
    return count;
  }

  /** Ends every connection on this process (shutdown). */
  endAll(): void {
    for (const key of [...this.open.keys()]) for (const connection of this.connectionsOf(key)) connection.end();
  }

  private apply(event: PrincipalEvent): void {
    const at = Date.now();
    const key = principalKey(event);
    this.recent.set(`changed:${key}`, { at, keep: null });
    if (event.type === "ended") {
      if (event.sessionId !== undefined) this.recent.set(`session:${event.kind}:${event.sessionId}`, { at, keep: null });
      else this.recent.set(`ended:${key}`, { at, keep: event.keep ?? null });
    }
    for (const listener of this.listeners) listener(event);
    for (const connection of this.connectionsOf(key)) {
      try {
        if (endsConnection(event, connection.principal)) connection.end();
        else if (event.type === "changed") connection.changed?.();
      } catch (error) {
        this.log.error({ err: error }, "could not end or update a connection");
      }
    }
  }

  /** A copy: ending a connection removes it from the registry. */
  private connectionsOf(key: string): Connection[] {
    const entry = this.open.get(key);
    return entry === undefined ? [] : entry instanceof Set ? [...entry] : [entry];
  }
}
