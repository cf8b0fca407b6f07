import { Counter, type Registry } from "prom-client";

/** The door a client is served through. */
export type Door = "socket.io" | "sse" | "lobby";

/**
 * The message counters of `/metrics`: posted, delivered to clients, repaired from the
 * database by the relay, clients cut off for not reading. One instance per server, made
 * in the composition root and handed to the parts that count.
 */
export class MessageMetrics {
  private readonly postedTotal: Counter<"kind">;
  /** Deliveries since the last scrape: a plain increment on the hot path, added to the counter when scraped. */
  private readonly unscraped: Record<Door, number> = { "socket.io": 0, sse: 0, lobby: 0 };
  private readonly repairedTotal: Counter;
  private readonly cutOffTotal: Counter<"door">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.postedTotal = new Counter({ name: "convene_messages_posted_total", help: "Messages committed, by stream kind (channel, dm, room, pair)", labelNames: ["kind"], registers });
    const unscraped = this.unscraped;
    new Counter({
      name: "convene_messages_delivered_total",
      help: "Stream items (messages, lobby changes) written to a client, by door",
      labelNames: ["door"],
      registers,
      collect() {
        for (const door of Object.keys(unscraped) as Door[]) {
          this.inc({ door }, unscraped[door]);
          unscraped[door] = 0;
        }
      },
    });
    this.repairedTotal = new Counter({ name: "convene_messages_repaired_total", help: "Stream items the relay read from the database because their event was lost or late", registers });
    this.cutOffTotal = new Counter({ name: "convene_clients_cut_off_total", help: "Clients disconnected for leaving too much unread, by door", labelNames: ["door"], registers });
  }

  /** `streamKey` is `<kind>:<id>`: the kind is the label, so its cardinality stays the number of kinds. */
  posted(streamKey: string): void {
    this.postedTotal.inc({ kind: streamKey.slice(0, streamKey.indexOf(":")) });
  }

  delivered(door: Door): void {
    this.unscraped[door] += 1;
  }

  repaired(count: number): void {
    if (count > 0) this.repairedTotal.inc(count);
  }

  cutOff(door: Door): void {
    this.cutOffTotal.inc({ door });
  }
}
