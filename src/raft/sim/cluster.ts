// SimCluster: a whole cluster of REAL RaftNodes (the driver around the real core) in one process, on a simulated
// network, clock (ticks) and disk. Every operation ends with awaitIdle() (each node's idle(), in a fixed order)
// followed by every safety checker; a violation throws SafetyViolation("seed <N>: <checker> ...").
//
// Invariants: nothing reads a clock or Math.random: the PRNG (one seed) drives timeouts, request ids, faults and
// crash losses, and delivery order is fixed by the network, so a seed replays exactly (see traceHash()).
import { createHash, type Hash } from "node:crypto";
import { RaftNode } from "../node.js";
import { type ConfState, type Message, message, type NodeId, RaftError } from "../types.js";
import {
  type Acknowledged,
  checkCommitStability,
  checkConfigurationAgreement,
  checkElectionSafety,
  checkLeaderCompleteness,
  checkLogMatching,
  checkStateMachineSafety,
  type NodeView,
  SafetyHistory,
} from "./checkers.js";
import { encodeCommand, KvMachine, type KvCommand, type KvRequest, type KvResult } from "./kv-machine.js";
import type { Prng } from "./prng.js";
import { SimNetwork, SimTransport } from "./sim-network.js";
import { SimLogStorage, SimSnapshotStorage } from "./sim-storage.js";

export class SafetyViolation extends Error {
  override name = "SafetyViolation";
}

export interface ClusterOptions {
  seed: number;
  random: Prng;
  size: number;
  electionTick?: number;
  heartbeatTick?: number;
  snapshotThreshold?: number;
  compactionMargin?: number;
  maxSizePerMsg?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /** Verbose trace lines. */
  log?: (line: string) => void;
  /** Also log every delivered message (with log). */
  traceMessages?: boolean;
}

export class SimNode {
  readonly storage = new SimLogStorage();
  readonly snapshots = new SimSnapshotStorage();
  machine = new KvMachine();
  transport?: SimTransport;
  raft?: RaftNode;
  /** For nodes added at runtime: the leader's last index when it was added (its add-learner entry comes later). */
  joinedAt = 0;
  constructor(
    readonly id: NodeId,
    readonly random: Prng,
    readonly bootstrap: ConfState,
  ) {}
}

export class SimCluster {
  readonly network: SimNetwork;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly history = new SafetyHistory();
  readonly acked: Acknowledged[] = [];
  step = 0;
  proposed = 0;
  private readonly hash: Hash = createHash("sha256");
  private readonly pendingViolations: string[] = [];
  private nextNode: number;

  private constructor(readonly o: ClusterOptions) {
    this.network = new SimNetwork(o.random.fork());
    this.nextNode = o.size + 1;
  }

  static async create(o: ClusterOptions): Promise<SimCluster> {
    const c = new SimCluster(o);
    const voters = Array.from({ length: o.size }, (_, i) => `n${i + 1}`);
    for (const id of voters) c.nodes.set(id, new SimNode(id, o.random.fork(), { voters, learners: [] }));
    for (const id of voters) await c.startNode(id);
    await c.settle("create");
    return c;
  }

  // ── Queries ──────────────────────────────────────────────────────────────────────────────────────────────

  ids(): NodeId[] {
    return [...this.nodes.keys()];
  }

  liveIds(): NodeId[] {
    return this.ids().filter((id) => this.nodes.get(id)?.raft);
  }

  crashedIds(): NodeId[] {
    return this.ids().filter((id) => !this.nodes.get(id)?.raft);
  }

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raft(id: NodeId): RaftNode {
    const r = this.node(id).raft;
    if (!r) throw new Error(`node ${id} is down`);
    return r;
  }

  /** The live leader with the highest term, if any. */
  leader(): NodeId | undefined {
    let best: { id: NodeId; term: number } | undefined;
    for (const id of this.liveIds()) {
      const s = this.raft(id).status();
      if (s.role === "leader" && (!best || s.term > best.term)) best = { id, term: s.term };
    }
    return best?.id;
  }

  /** The configuration as the leader (or else any live node) sees it. */
  membership(): ConfState {
    const id = this.leader() ?? this.liveIds()[0];
    return id ? this.raft(id).membership() : { voters: [], learners: [] };
  }

  traceHash(): string {
    return this.hash.copy().digest("hex").slice(0, 16);
  }

  describe(): string {
    const lines = this.ids().map((id) => {
      const n = this.node(id);
      const log = `log [${n.storage.firstIndex()},${n.storage.lastIndex()}]`;
      if (!n.raft) return `  ${id}: DOWN ${log} hs=${JSON.stringify(n.storage.initialState().hardState)}`;
      const s = n.raft.status();
      const progress = s.progress ? ` progress={${[...s.progress].map(([p, pr]) => `${p}:${pr.state}/${pr.match}/${pr.next}`).join(" ")}}` : "";
      return `  ${id}: ${s.role} term=${s.term} lead=${s.lead || "-"} commit=${s.commit} applied=${s.applied} ${log} conf=${JSON.stringify(n.raft.membership())}${progress}`;
    });
    return [`step ${this.step} ${this.network.describe()} acked=${this.acked.length}`, ...lines].join("\n");
  }

  // ── Time and delivery ────────────────────────────────────────────────────────────────────────────────────

  /** Advances the clock n ticks: each tick delivers what is due, then ticks every live node; checks after each. */
  async tick(n = 1): Promise<void> {
    for (let i = 0; i < n; i++) {
      this.network.now++;
      await this.deliver();
      for (const id of this.liveIds()) this.raft(id).tick();
      await this.settle("tick");
    }
  }

  /** Delivers every message due now, in rounds, until none is due (replies with zero delay arrive this tick). */
  async deliver(): Promise<void> {
    for (let round = 0; round < 50; round++) {
      const due = this.network.due();
      const reports = this.network.reports.splice(0);
      if (due.length === 0 && reports.length === 0) return;
      for (const msg of due) this.stepInto(msg.to, msg);
      for (const r of reports) this.stepInto(r.from, message({ type: r.type, from: r.to, to: r.from, reject: !r.delivered }));
      await this.awaitIdle();
    }
  }

  private stepInto(id: NodeId, msg: Message): void {
    const raft = this.nodes.get(id)?.raft;
    if (!raft) return;
    const line = `${msg.type} ${msg.from}>${msg.to} t${msg.term} i${msg.index} l${msg.logTerm} c${msg.commit} n${msg.entries.length} r${msg.reject} h${msg.rejectHint}${msg.snapshot ? ` s${msg.snapshot.meta.index}` : ""}`;
    this.hash.update(line);
    if (this.o.traceMessages) this.o.log?.(`t=${this.network.now} ${line}`);
    try {
      raft.step(msg);
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
    }
  }

  /** Waits for every node's processing pass, in a fixed order, so the run is deterministic. */
  async awaitIdle(): Promise<void> {
    for (const id of this.ids()) await this.nodes.get(id)?.raft?.idle();
  }

  /** awaitIdle, then every checker; throws SafetyViolation naming the checker, the step and the state. */
  async settle(op: string): Promise<void> {
    await this.awaitIdle();
    this.step++;
    this.hash.update(`${this.step} ${op}\n`);
    const violation = this.pendingViolations.shift() ?? this.runCheckers();
    if (violation) throw new SafetyViolation(`seed ${this.o.seed}: ${violation} (step ${this.step}, after ${op})\n${this.describe()}`);
  }

  private runCheckers(): string | undefined {
    const views = this.views();
    const checks: [string, () => string | undefined][] = [
      ["Election Safety", () => checkElectionSafety(this.history, views)],
      ["Log Matching", () => checkLogMatching(views)],
      ["Commit Stability", () => checkCommitStability(this.history, views)],
      ["Leader Completeness", () => checkLeaderCompleteness(this.history, views)],
      ["State Machine Safety", () => checkStateMachineSafety(this.history, views)],
      ["Configuration Agreement", () => checkConfigurationAgreement(views)],
    ];
    for (const [name, check] of checks) {
      const v = check();
      if (v) return `${name}: ${v}`;
    }
    return undefined;
  }

  views(): NodeView[] {
    return this.ids().map((id) => {
      const n = this.node(id);
      return { id, live: !!n.raft, storage: n.storage, machine: n.machine, status: n.raft?.status(), membership: n.raft?.membership(), joinedAt: n.joinedAt };
    });
  }

  // ── Client operations ────────────────────────────────────────────────────────────────────────────────────

  /** Proposes a command on a node; acknowledged (resolved) proposals are tracked. Never rejects. */
  propose(id: NodeId, command?: KvRequest): Promise<KvResult | undefined> {
    const cmdId = `c${++this.proposed}`;
    const request: KvRequest = command ?? { op: "set", key: `k${this.proposed % 7}`, value: `v${this.proposed}` };
    const full: KvCommand = { ...request, id: cmdId };
    let pending: Promise<unknown>;
    try {
      pending = this.raft(id).propose(encodeCommand(full));
    } catch {
      return Promise.resolve(undefined);
    }
    return pending.then(
      (value) => {
        const r = value as KvResult;
        this.acked.push({ id: cmdId, index: r.index, term: r.term });
        return r;
      },
      () => undefined,
    );
  }

  /** A read barrier; records a violation if it resolves before everything committed at the call is applied. */
  readBarrier(id: NodeId): Promise<boolean> {
    const raft = this.raft(id);
    const committed = Math.max(0, ...this.liveIds().map((x) => this.raft(x).status().commit));
    return raft.readBarrier().then(
      () => {
        const applied = raft.status().applied;
        if (applied < committed) this.pendingViolations.push(`Read Barrier: ${id} answered at applied ${applied} < commit ${committed} at the call`);
        return true;
      },
      () => false,
    );
  }

  // ── Faults ───────────────────────────────────────────────────────────────────────────────────────────────

  /** Power loss: the RaftNode stops, unsynced writes are (partly) lost, the node receives nothing. */
  async crash(id: NodeId): Promise<void> {
    const n = this.node(id);
    if (!n.raft) return;
    const raft = n.raft;
    n.raft = undefined;
    await raft.stop();
    n.storage.crash(n.random);
    await n.transport?.close();
    this.network.setDown(id, true);
    await this.settle(`crash ${id}`);
  }

  async restart(id: NodeId): Promise<void> {
    if (this.node(id).raft) return;
    await this.startNode(id);
    await this.settle(`restart ${id}`);
  }

  async partition(groups: NodeId[][]): Promise<void> {
    this.network.partition(groups);
    await this.settle(`partition ${JSON.stringify(groups)}`);
  }

  async heal(): Promise<void> {
    this.network.heal();
    await this.settle("heal");
  }

  /** Drops every append to `id` while on, so it falls behind the leader's compaction and needs a snapshot. */
  async slowFollower(id: NodeId, on: boolean): Promise<void> {
    this.network.setSlow(id, on);
    await this.settle(`slow ${id} ${on}`);
  }

  // ── Membership ───────────────────────────────────────────────────────────────────────────────────────────

  /** Starts a new empty node and asks the leader to add it as a learner; resolves whether it was committed. */
  async addLearner(via: NodeId): Promise<{ id: NodeId; done: Promise<boolean> }> {
    const id = `n${this.nextNode++}`;
    const conf = this.raft(via).membership();
    const node = new SimNode(id, this.o.random.fork(), { voters: conf.voters.slice(), learners: [...conf.learners, id] });
    node.joinedAt = this.raft(via).status().lastIndex + 1;
    this.nodes.set(id, node);
    await this.startNode(id);
    const done = this.confChange(() => this.raft(via).addLearner(id, `sim://${id}`));
    await this.settle(`add-learner ${id} via ${via}`);
    return { id, done };
  }

  /** Returns (wrapped, so awaiting this does not wait for it) whether the change was committed and applied. */
  async promote(via: NodeId, id: NodeId): Promise<{ done: Promise<boolean> }> {
    const done = this.confChange(() => this.raft(via).promote(id));
    await this.settle(`promote ${id} via ${via}`);
    return { done };
  }

  async remove(via: NodeId, id: NodeId): Promise<{ done: Promise<boolean> }> {
    const done = this.confChange(() => this.raft(via).remove(id));
    await this.settle(`remove ${id} via ${via}`);
    return { done };
  }

  async transferLeadership(to: NodeId): Promise<void> {
    const lead = this.leader();
    if (lead) this.raft(lead).transferLeadership(to);
    await this.settle(`transfer to ${to}`);
  }

  private confChange(submit: () => Promise<ConfState>): Promise<boolean> {
    try {
      return submit().then(
        () => true,
        () => false,
      );
    } catch {
      return Promise.resolve(false);
    }
  }

  private async startNode(id: NodeId): Promise<void> {
    const n = this.node(id);
    n.machine = new KvMachine();
    n.transport = new SimTransport(id, this.network);
    this.network.setDown(id, false);
    n.raft = await RaftNode.start({
      id,
      storage: n.storage,
      snapshots: n.snapshots,
      stateMachine: n.machine,
      transport: n.transport,
      random: () => n.random.next(),
      bootstrap: n.bootstrap,
      electionTick: this.o.electionTick ?? 10,
      heartbeatTick: this.o.heartbeatTick ?? 1,
      maxSizePerMsg: this.o.maxSizePerMsg ?? 256,
      maxInflightMsgs: 16,
      preVote: this.o.preVote ?? true,
      checkQuorum: this.o.checkQuorum ?? true,
      snapshotThreshold: this.o.snapshotThreshold ?? 40,
      compactionMargin: this.o.compactionMargin ?? 5,
      onSoftState: (s) => this.onSoftState(id, s.role),
    });
  }

  private onSoftState(id: NodeId, role: string): void {
    const raft = this.nodes.get(id)?.raft;
    if (role !== "leader" || !raft) return;
    const s = raft.status();
    if (s.role !== "leader") return;
    const v = this.history.noteLeader(id, s.term);
    if (v) this.pendingViolations.push(`Election Safety: ${v}`);
    this.o.log?.(`t=${this.network.now} ${id} leads term ${s.term}`);
  }
}
