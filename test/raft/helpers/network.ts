// A synchronous in-test network of RawNodes, like etcd-io/raft's `network` in raft_test.go: each Ready is
// persisted to the node's MemoryLog, its committed entries applied (conf changes included), and its messages
// delivered breadth-first until the cluster is quiet. Partitions and filters drop messages; every message emitted
// is recorded so tests can count them.
import {
  decodeConfChange,
  MemoryLog,
  RawNode,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type ReadState,
  type Ready,
} from "../../../src/raft/index.js";

/** mulberry32: a small seeded PRNG returning [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type NodeOptions = Partial<Omit<RaftConfig, "id" | "log" | "random">> & { seed?: number };

export interface TestNode {
  id: NodeId;
  node: RawNode;
  log: MemoryLog;
  /** Every committed entry this node applied, in order. */
  applied: Entry[];
  readStates: ReadState[];
  confState?: ConfState;
}

export function bytes(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}

let seedCounter = 1;

/** A node over a fresh MemoryLog whose initial configuration is `conf`. */
export function newTestNode(id: NodeId, conf: Partial<ConfState>, opts: NodeOptions = {}, log?: MemoryLog): TestNode {
  const memLog = log ?? new MemoryLog(conf);
  const { seed, ...rest } = opts;
  const node = new RawNode({ id, log: memLog, random: seededRandom(seed ?? seedCounter++), ...rest });
  return { id, node, log: memLog, applied: [], readStates: [] };
}

/**
 * Handles one Ready the way a driver must: persist snapshot, entries and hard state; hand back messages; apply
 * committed entries (conf changes through applyConfChange); advance.
 */
export function processReady(n: TestNode): Message[] {
  if (!n.node.hasReady()) return [];
  const rd: Ready = n.node.ready();
  if (rd.snapshot) n.log.applySnapshot(rd.snapshot);
  n.log.append(rd.entries);
  if (rd.hardState) n.log.setHardState(rd.hardState);
  for (const e of rd.committedEntries) {
    if (e.type === "conf-change") {
      n.confState = n.node.applyConfChange(decodeConfChange(e.data));
      n.log.setConfState(n.confState);
    }
    n.applied.push(e);
  }
  n.readStates.push(...rd.readStates);
  n.node.advance(rd);
  return rd.messages;
}

export class Network {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Every message any node emitted, delivered or not. */
  readonly sent: Message[] = [];
  /** Returns false to drop a message (in addition to partitions). */
  filter: (m: Message) => boolean = () => true;
  private cuts = new Set<string>();
  private queue: Message[] = [];

  /** A cluster of voters `ids`, each with the same options (and its own seed). */
  constructor(ids: NodeId[], opts: NodeOptions = {}) {
    ids.forEach((id, i) => this.nodes.set(id, newTestNode(id, { voters: ids }, { seed: i + 1, ...opts })));
  }

  get(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  node(id: NodeId): RawNode {
    return this.get(id).node;
  }

  /** Adds a node that joins with an empty log (it learns the configuration from the leader). */
  add(id: NodeId, conf: Partial<ConfState>, opts: NodeOptions = {}): TestNode {
    const n = newTestNode(id, conf, opts);
    this.nodes.set(id, n);
    return n;
  }

  cut(a: NodeId, b: NodeId): void {
    this.cuts.add(`${a}>${b}`).add(`${b}>${a}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  heal(): void {
    this.cuts.clear();
    this.filter = () => true;
  }

  /** Runs `act` on node `id`, then delivers everything until the cluster is quiet. */
  act(id: NodeId, act: (node: RawNode) => void): void {
    act(this.node(id));
    this.settle();
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.act(id, (n) => n.tick());
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of [...this.nodes.keys()].sort()) this.node(id).tick();
      this.settle();
    }
  }

  campaign(id: NodeId): void {
    this.act(id, (n) => n.campaign());
  }

  propose(id: NodeId, data: string | Uint8Array): void {
    this.act(id, (n) => n.propose(typeof data === "string" ? bytes(data) : data));
  }

  /** Injects a message as if received from the network. */
  deliver(m: Message): void {
    this.queue.push(m);
    this.settle();
  }

  /** Processes Readies and delivers messages breadth-first until nothing is left. */
  settle(): void {
    for (let guard = 0; guard < 100_000; guard++) {
      for (const id of [...this.nodes.keys()].sort()) this.enqueue(processReady(this.get(id)));
      const m = this.queue.shift();
      if (!m) return;
      const to = this.nodes.get(m.to);
      if (to) to.node.step(m);
    }
    throw new Error("network did not settle");
  }

  private enqueue(msgs: Message[]): void {
    for (const m of msgs) {
      this.sent.push(m);
      if (!this.cuts.has(`${m.from}>${m.to}`) && this.filter(m)) this.queue.push(m);
    }
  }

  leader(): NodeId | undefined {
    const leaders = [...this.nodes.values()].filter((n) => n.node.status().role === "leader");
    leaders.sort((a, b) => b.node.status().term - a.node.status().term);
    return leaders[0]?.id;
  }

  /** The data of the normal, non-empty entries node `id` applied. */
  appliedData(id: NodeId): string[] {
    return this.get(id)
      .applied.filter((e) => e.type === "normal" && e.data.byteLength > 0)
      .map((e) => text(e.data));
  }
}
