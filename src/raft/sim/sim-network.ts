// The simulated network: every message in flight carries a delivery time in ticks. Faults, all drawn from the
// run's PRNG: loss, delay (0..maxDelay ticks, which also reorders), duplication, partitions into arbitrary groups,
// down nodes (receive nothing) and "slow" nodes (appends to them are dropped, so they fall behind a compaction).
//
// Invariants: delivery order is a pure function of (deliverAt, send sequence); a message crossing a partition or
// addressed to a down node is dropped at delivery time; forwarded proposals ("prop") are never duplicated (the
// transport delivers a stream at most once; duplicates of Raft's own messages are what Raft must tolerate).
import type { Transport } from "../storage.js";
import type { Message, NodeId } from "../types.js";
import type { Prng } from "./prng.js";

export interface NetworkFaults {
  loss: number;
  duplicate: number;
  maxDelay: number;
}

export const NO_FAULTS: NetworkFaults = { loss: 0, duplicate: 0, maxDelay: 0 };

interface InFlight {
  at: number;
  seq: number;
  msg: Message;
}

/** A transport's report to a sender: a snapshot delivered or lost ("snap-status"), or a peer down ("unreachable"). */
export interface TransportReport {
  type: "snap-status" | "unreachable";
  /** The sender of the message the report is about (who receives the report). */
  from: NodeId;
  to: NodeId;
  delivered: boolean;
}

export class SimNetwork {
  now = 0;
  faults: NetworkFaults = { ...NO_FAULTS };
  private inFlight: InFlight[] = [];
  private seq = 0;
  private group = new Map<NodeId, number>();
  private readonly down = new Set<NodeId>();
  private readonly slow = new Set<NodeId>();
  /** Counts by message type of everything sent (for message-count assertions). */
  readonly sent = new Map<string, number>();
  delivered = 0;
  dropped = 0;
  /** Reports not yet handed to the senders (the cluster drains them at delivery). */
  reports: TransportReport[] = [];

  constructor(private readonly random: Prng) {}

  send(msg: Message): void {
    this.sent.set(msg.type, (this.sent.get(msg.type) ?? 0) + 1);
    if (this.random.chance(this.faults.loss)) return this.drop(msg);
    this.enqueue(msg);
    if (msg.type !== "prop" && this.random.chance(this.faults.duplicate)) this.enqueue({ ...msg });
  }

  /** Removes and returns the messages due now, in delivery order, minus those a fault drops. */
  due(): Message[] {
    if (this.inFlight.length === 0) return [];
    const ready: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.inFlight) (f.at <= this.now ? ready : later).push(f);
    this.inFlight = later;
    ready.sort((a, b) => a.at - b.at || a.seq - b.seq);
    const out: Message[] = [];
    for (const { msg } of ready) {
      if (this.blocked(msg)) this.drop(msg);
      else {
        out.push(msg);
        this.delivered++;
        if (msg.type === "snap") this.reports.push({ type: "snap-status", from: msg.from, to: msg.to, delivered: true });
      }
    }
    return out;
  }

  /** Messages in flight, optionally only those of one type. */
  pending(type?: Message["type"]): number {
    return type ? this.inFlight.filter((f) => f.msg.type === type).length : this.inFlight.length;
  }

  /** Splits the nodes into groups; nodes in no group form one more group together. */
  partition(groups: NodeId[][]): void {
    this.group = new Map();
    groups.forEach((g, i) => g.forEach((id) => this.group.set(id, i + 1)));
  }

  heal(): void {
    this.group = new Map();
    this.slow.clear();
  }

  setDown(id: NodeId, down: boolean): void {
    if (down) this.down.add(id);
    else this.down.delete(id);
  }

  setSlow(id: NodeId, slow: boolean): void {
    if (slow) this.slow.add(id);
    else this.slow.delete(id);
  }

  isPartitioned(): boolean {
    return this.group.size > 0 || this.slow.size > 0;
  }

  connected(a: NodeId, b: NodeId): boolean {
    return (this.group.get(a) ?? 0) === (this.group.get(b) ?? 0);
  }

  describe(): string {
    const groups = [...this.group.entries()].map(([id, g]) => `${id}:${g}`).join(",");
    return `t=${this.now} inflight=${this.inFlight.length} groups=[${groups}] down=[${[...this.down]}] slow=[${[...this.slow]}]`;
  }

  private blocked(msg: Message): boolean {
    if (this.down.has(msg.to) || !this.connected(msg.from, msg.to)) return true;
    return this.slow.has(msg.to) && msg.type === "app";
  }

  private enqueue(msg: Message): void {
    const delay = this.faults.maxDelay > 0 ? this.random.int(0, this.faults.maxDelay) : 0;
    this.inFlight.push({ at: this.now + delay, seq: this.seq++, msg });
  }

  private drop(msg: Message): void {
    this.dropped++;
    if (msg.type === "snap") this.reports.push({ type: "snap-status", from: msg.from, to: msg.to, delivered: false });
    // A down peer refuses connections: the sender's transport notices (a partition or a lost packet it does not).
    else if (this.down.has(msg.to) && msg.type === "app") this.reports.push({ type: "unreachable", from: msg.from, to: msg.to, delivered: false });
  }
}

/** One node's view of the network. Sends after close() are dropped, as a closed socket would. */
export class SimTransport implements Transport {
  readonly peers = new Map<NodeId, string>();
  private closed = false;

  constructor(
    private readonly id: NodeId,
    private readonly network: SimNetwork,
  ) {}

  send(messages: Message[]): void {
    if (this.closed) return;
    for (const msg of messages) {
      if (msg.from !== this.id) throw new Error(`node ${this.id} sent a message from ${msg.from}`);
      this.network.send(msg);
    }
  }

  setPeer(id: NodeId, address: string): void {
    this.peers.set(id, address);
  }

  removePeer(id: NodeId): void {
    this.peers.delete(id);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
