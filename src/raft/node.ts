// The driver: the loop around the pure core (RawNode) that does the I/O, in the order Raft's safety needs:
//
//   events (tick, message, proposal, read, conf change) ──► RawNode (pure, synchronous)
//        │
//        ▼  while hasReady():
//   1. send the messages that promise nothing about our disk (appends, heartbeats: mayDepartBeforePersist)
//   2. persist: snapshot → snapshot storage; hard state + entries → log storage; sync when mustSync;
//      then send the rest (answers to appends and votes, which promise what was just made durable)
//   3. apply committed entries (already durable here, so before step 2 unless a snapshot must be installed first)
//      → state machine / membership, answering their proposals and the reads they unblock
//   4. advance; maybe take a snapshot and compact
//
// One processing pass runs at a time; events arriving meanwhile are applied to the core at once and picked up by
// the next pass. Nothing here reads a clock or a random source directly: both are injected, so the simulator can
// run real drivers deterministically.
import { mayDepartBeforePersist, RawNode } from "./raw-node.js";
import type { RaftConfig } from "./raft.js";
import { decodeConfChange, encodeConfChange } from "./raft.js";
import type { LogReader, LogStorage, SnapshotStorage, StateMachine, Transport } from "./storage.js";
import {
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  NONE,
  type NodeId,
  RaftError,
  type ReadState,
  type Ready,
  type Snapshot,
  type SoftState,
} from "./types.js";

export interface RaftNodeOptions {
  id: NodeId;
  storage: LogStorage;
  snapshots: SnapshotStorage;
  stateMachine: StateMachine;
  transport: Transport;
  /** A seeded source in [0, 1): election timeouts and request ids come from it. */
  random: () => number;
  /** Voters of a brand-new cluster (ignored when the storage already holds state). */
  bootstrap?: ConfState;
  electionTick?: number;
  heartbeatTick?: number;
  maxSizePerMsg?: number;
  maxInflightMsgs?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /** Take a snapshot (and compact the log) once this many entries were applied since the last one. */
  snapshotThreshold?: number;
  /** Entries kept behind a snapshot, so slightly lagging followers catch up without one. */
  compactionMargin?: number;
  /**
   * Ticks a proposal, membership change or read may wait before it fails with RaftError "unavailable" (a
   * forwarded request that a leader drops, or a leader that loses its quorum, would otherwise never answer).
   * Default: 5 election timeouts.
   */
  requestTimeoutTicks?: number;
  /** Called with every soft state change (leader elected, role change). */
  onSoftState?: (state: SoftState) => void;
  /**
   * Called once when the node stops for good on its own: its log or snapshot could not be persisted (disk full,
   * an I/O error, a failed fsync), or applying failed. It has stopped taking part in Raft by then.
   */
  onFatal?: (error: RaftError) => void;
}

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
  /** The tick after which the request is answered with an error instead of waiting for ever. */
  deadline: number;
}

const PROPOSAL = 1;
const ID_BYTES = 8;

export class RaftNode {
  private readonly raw: RawNode;
  private readonly proposals = new Map<string, Pending<unknown>>();
  private readonly confChanges = new Map<string, Pending<ConfState>>();
  private readonly reads = new Map<string, Pending<void> & { index?: number }>();
  /** Reads not yet sent as a ReadIndex request: the next processing pass sends them as one. */
  private waitingReads: { resolve(): void; reject(error: Error): void }[] = [];
  private processing?: Promise<void>;
  private again = false;
  private stopped = false;
  private applied: number;
  private snapshotIndex: number;
  private latestSnapshot: Snapshot;
  private confState: ConfState;
  private readonly startConfState: ConfState;
  /** Set when a learner was added: it needs a snapshot that already lists it, so take one now. */
  private snapshotForLearner = false;
  private counter = 0;
  private ticks = 0;
  private fatal?: Error;

  private constructor(
    private readonly o: RaftNodeOptions,
    snapshot: Snapshot,
  ) {
    this.latestSnapshot = snapshot;
    this.applied = snapshot.meta.index;
    this.snapshotIndex = snapshot.meta.index;
    // Membership at the snapshot: the driver's own snapshots compact conf-change entries away, so the snapshot is
    // the authority; entries after it replay their changes as they are applied again.
    const initial = o.storage.initialState();
    if (snapshot.meta.index > 0) this.confState = snapshot.meta.confState;
    else this.confState = initial.confState.voters.length ? initial.confState : (o.bootstrap ?? { voters: [o.id], learners: [] });
    this.startConfState = this.confState;
    const config: RaftConfig = {
      id: o.id,
      electionTick: o.electionTick ?? 10,
      heartbeatTick: o.heartbeatTick ?? 1,
      maxSizePerMsg: o.maxSizePerMsg ?? 1024 * 1024,
      maxInflightMsgs: o.maxInflightMsgs ?? 256,
      preVote: o.preVote ?? true,
      checkQuorum: o.checkQuorum ?? true,
      random: o.random,
      log: this.logView(),
      applied: this.applied,
    };
    this.raw = new RawNode(config);
  }

  /** Restores from the latest snapshot plus the log after it, then starts taking events. */
  static async start(o: RaftNodeOptions): Promise<RaftNode> {
    const snapshot = (await o.snapshots.latest()) ?? emptySnapshot(o.bootstrap ?? { voters: [o.id], learners: [] });
    if (snapshot.meta.index > 0) await o.stateMachine.restore(snapshot.data);
    const node = new RaftNode(o, snapshot);
    node.kick();
    await node.idle();
    return node;
  }

  get id(): NodeId {
    return this.o.id;
  }

  tick(): void {
    if (this.stopped) return;
    this.ticks += 1;
    this.raw.tick();
    this.expireRequests();
    this.kick();
  }

  /** A message from the transport: a peer's message, or the transport's own report about a peer. */
  step(message: Message): void {
    if (this.stopped) return;
    if (message.type === "unreachable") this.raw.reportUnreachable(message.from);
    else if (message.type === "snap-status") this.raw.reportSnapshot(message.from, !message.reject);
    else this.raw.step(message);
    this.kick();
  }

  campaign(): void {
    this.raw.campaign();
    this.kick();
  }

  /** Resolves with the state machine's result once the command is applied here; rejects when it was dropped. */
  propose(command: Uint8Array): Promise<unknown> {
    this.assertRunning();
    const id = this.nextId();
    const data = new Uint8Array(1 + ID_BYTES + command.length);
    data[0] = PROPOSAL;
    data.set(hexToBytes(id), 1);
    data.set(command, 1 + ID_BYTES);
    return this.track(this.proposals, id, () => this.raw.propose(data));
  }

  /**
   * A linearizable read barrier: resolves once this node has applied everything committed before the call. Reads
   * that arrive while a processing pass runs share one ReadIndex request (one heartbeat round), as etcd batches them.
   */
  readBarrier(): Promise<void> {
    this.assertRunning();
    if (this.raw.status().lead === NONE) return Promise.reject(new RaftError("no leader: cannot confirm a linearizable read", "no-leader"));
    return new Promise<void>((resolve, reject) => {
      this.waitingReads.push({ resolve, reject });
      this.kick();
    });
  }

  addLearner(node: NodeId, address: string): Promise<ConfState> {
    return this.changeMembership({ type: "add-learner", node, context: address });
  }

  /**
   * Promotes a learner to voter, on the leader and only once the learner has caught up (its log reaches the
   * commit index): promoting a learner that lags would cost the cluster availability until it catches up.
   */
  promote(node: NodeId): Promise<ConfState> {
    const status = this.raw.status();
    if (status.role !== "leader") {
      return Promise.reject(new RaftError(`promote ${node} on the leader (${status.lead || "none known"}): only it knows whether ${node} has caught up`, "proposal-dropped"));
    }
    const match = status.progress?.get(node)?.match ?? 0;
    if (match < status.commit) {
      return Promise.reject(new RaftError(`learner ${node} has not caught up yet (its log reaches ${match} of ${status.commit} committed)`, "proposal-dropped"));
    }
    return this.changeMembership({ type: "promote", node, context: "" });
  }

  /** Whether a learner's log reaches this leader's commit index (false when not leader or unknown). */
  caughtUp(node: NodeId): boolean {
    const status = this.raw.status();
    return status.role === "leader" && (status.progress?.get(node)?.match ?? 0) >= status.commit;
  }

  remove(node: NodeId): Promise<ConfState> {
    return this.changeMembership({ type: "remove", node, context: "" });
  }

  transferLeadership(to: NodeId): void {
    this.raw.transferLeader(to);
    this.kick();
  }

  reportUnreachable(peer: NodeId): void {
    this.raw.reportUnreachable(peer);
    this.kick();
  }

  status(): ReturnType<RawNode["status"]> & { applied: number; snapshotIndex: number } {
    return { ...this.raw.status(), applied: this.applied, snapshotIndex: this.snapshotIndex };
  }

  membership(): ConfState {
    return this.confState;
  }

  /** Resolves when no processing pass is running or queued (tests and the simulator wait on it). */
  async idle(): Promise<void> {
    while (this.processing) await this.processing;
    if (this.fatal) throw this.fatal;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.processing?.catch(() => undefined);
    const stopped = new RaftError("the node stopped", "stopped");
    for (const r of this.waitingReads.splice(0)) r.reject(stopped);
    for (const table of [this.proposals, this.confChanges, this.reads] as Map<string, Pending<never>>[]) {
      for (const p of table.values()) p.reject(stopped);
      table.clear();
    }
  }

  private changeMembership(change: ConfChange): Promise<ConfState> {
    this.assertRunning();
    const key = `${change.type}:${change.node}`;
    return this.track(this.confChanges, key, () => this.raw.proposeConfChange(change));
  }

  private track<T>(table: Map<string, Pending<T>>, key: string, submit: () => void): Promise<T> {
    const timeout = this.o.requestTimeoutTicks ?? 5 * (this.o.electionTick ?? 10);
    return new Promise<T>((resolve, reject) => {
      table.set(key, { resolve, reject, deadline: this.ticks + timeout });
      try {
        submit();
      } catch (e) {
        table.delete(key);
        reject(e);
        return;
      }
      this.kick();
    });
  }

  /** Fails requests past their deadline: their outcome is unknown (the entry may still commit later). */
  private expireRequests(): void {
    for (const table of [this.proposals, this.confChanges, this.reads] as Map<string, Pending<never>>[]) {
      for (const [key, pending] of table) {
        if (pending.deadline > this.ticks) continue;
        table.delete(key);
        pending.reject(new RaftError("timed out: no answer from a leader in time; the request may or may not take effect", "unavailable"));
      }
    }
  }

  private kick(): void {
    if (this.stopped && !this.processing) return;
    if (this.processing) {
      this.again = true;
      return;
    }
    this.processing = this.processAll()
      .catch((e: unknown) => this.fail(e))
      .finally(() => {
        this.processing = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.kick();
        }
      });
  }

  /**
   * Storage failures are fatal: after a failed write or fsync the log's state on disk is unknown, and going on
   * could acknowledge what is not durable. Every waiting request fails with the cause, and so does every later one.
   */
  private fail(e: unknown): void {
    const failure =
      e instanceof RaftError && e.code === "storage-failed"
        ? e
        : new RaftError(`this member stopped after an internal failure: ${e instanceof Error ? e.message : String(e)}`, "stopped");
    this.fatal = failure;
    this.stopped = true;
    for (const r of this.waitingReads.splice(0)) r.reject(failure);
    for (const table of [this.proposals, this.confChanges, this.reads] as Map<string, Pending<never>>[]) {
      for (const p of table.values()) p.reject(failure);
      table.clear();
    }
    this.o.onFatal?.(failure);
  }

  private async processAll(): Promise<void> {
    do {
      this.again = false;
      for (;;) {
        this.submitWaitingReads();
        if (!this.raw.hasReady()) break;
        await this.processReady();
      }
    } while (this.again && !this.stopped);
  }

  private submitWaitingReads(): void {
    if (this.waitingReads.length === 0 || this.stopped) return;
    const batch = this.waitingReads;
    this.waitingReads = [];
    const id = this.nextId();
    this.track(this.reads, id, () => this.raw.readIndex(hexToBytes(id))).then(
      () => batch.forEach((r) => r.resolve()),
      (error: Error) => batch.forEach((r) => r.reject(error)),
    );
  }

  private async processReady(): Promise<void> {
    const rd = this.raw.ready();
    const { storage, snapshots } = this.o;
    const snapshot = rd.snapshot && rd.snapshot.meta.index > 0 ? rd.snapshot : undefined;
    // Appends and heartbeats go out while our own write is in flight: the two fsyncs overlap instead of adding up.
    const early = rd.messages.filter(mayDepartBeforePersist);
    const late = rd.messages.filter((m) => !mayDepartBeforePersist(m));
    if (early.length) this.o.transport.send(early);
    // Committed entries are durable here already, so they are applied (and their proposers answered) before this
    // Ready's new entries are written, instead of waiting for that fsync. A snapshot must be installed first.
    if (!snapshot) this.applyCommitted(rd);
    await persisting(async () => {
      if (snapshot) {
        await snapshots.save(snapshot);
        storage.applySnapshot(snapshot);
      }
      if (rd.hardState) storage.setHardState(rd.hardState);
      if (rd.entries.length) storage.append(rd.entries);
      if (rd.mustSync || rd.snapshot) await storage.sync();
    });
    if (rd.softState) this.o.onSoftState?.(rd.softState);
    if (late.length) this.o.transport.send(late);
    if (snapshot) {
      await this.installSnapshot(snapshot);
      this.applyCommitted(rd);
    }
    this.raw.advance(rd);
    await this.maybeSnapshot();
  }

  private applyCommitted(rd: Ready): void {
    for (const entry of rd.committedEntries) this.applyEntry(entry);
    this.noteReadStates(rd.readStates);
    this.answerReads();
  }

  private async installSnapshot(snapshot: Snapshot): Promise<void> {
    await this.o.stateMachine.restore(snapshot.data);
    this.latestSnapshot = snapshot;
    this.applied = snapshot.meta.index;
    this.snapshotIndex = snapshot.meta.index;
    this.confState = snapshot.meta.confState;
  }

  private applyEntry(entry: Entry): void {
    if (entry.index <= this.applied) return;
    this.applied = entry.index;
    if (entry.type === "conf-change") return this.applyConfChange(entry);
    if (entry.data.length < 1 + ID_BYTES || entry.data[0] !== PROPOSAL) return;
    const id = bytesToHex(entry.data.subarray(1, 1 + ID_BYTES));
    const command = entry.data.subarray(1 + ID_BYTES);
    let result: unknown;
    let error: Error | undefined;
    try {
      result = this.o.stateMachine.apply({ index: entry.index, term: entry.term, data: command });
    } catch (e) {
      error = e instanceof Error ? e : new Error(String(e));
    }
    const pending = this.proposals.get(id);
    if (!pending) return;
    this.proposals.delete(id);
    if (error) pending.reject(error);
    else pending.resolve(result);
  }

  private applyConfChange(entry: Entry): void {
    if (entry.data.length === 0) return;
    const change = decodeConfChange(entry.data);
    this.confState = this.raw.applyConfChange(change);
    if (change.type === "add-learner" && change.node !== this.o.id) {
      this.o.transport.setPeer(change.node, change.context);
      // The core rejects a snapshot whose membership lacks the receiver, and the newest one predates this change.
      this.snapshotForLearner = true;
    }
    if (change.type === "remove" && change.node !== this.o.id) this.o.transport.removePeer(change.node);
    const key = `${change.type}:${change.node}`;
    this.confChanges.get(key)?.resolve(this.confState);
    this.confChanges.delete(key);
  }

  private noteReadStates(states: ReadState[]): void {
    for (const state of states) {
      const pending = this.reads.get(bytesToHex(state.requestCtx));
      if (pending) pending.index = state.index;
    }
  }

  private answerReads(): void {
    for (const [id, pending] of this.reads) {
      if (pending.index === undefined || pending.index > this.applied) continue;
      this.reads.delete(id);
      pending.resolve();
    }
  }

  private async maybeSnapshot(): Promise<void> {
    const threshold = this.o.snapshotThreshold ?? 10_000;
    const due = this.applied - this.snapshotIndex >= threshold || (this.snapshotForLearner && this.applied > this.snapshotIndex);
    if (!due) return;
    this.snapshotForLearner = false;
    const index = this.applied;
    // A snapshot only holds committed entries: the commit index that covers it must be durable first, or a crash
    // could leave a snapshot ahead of the log's hard state.
    await persisting(() => this.o.storage.sync());
    const data = await this.o.stateMachine.snapshot();
    const snapshot: Snapshot = { meta: { index, term: this.o.storage.term(index), confState: this.confState }, data };
    await persisting(() => this.o.snapshots.save(snapshot));
    this.latestSnapshot = snapshot;
    this.snapshotIndex = index;
    const keepFrom = index - (this.o.compactionMargin ?? 1000);
    if (keepFrom > this.o.storage.firstIndex()) await persisting(async () => this.o.storage.compact(keepFrom));
  }

  /** The core reads the log through the storage, but takes snapshots from the driver, which makes them. */
  private logView(): LogReader {
    const storage = this.o.storage;
    return {
      // A brand-new cluster has no membership on disk yet: it starts from the bootstrap voters.
      initialState: () => ({ hardState: storage.initialState().hardState, confState: this.startConfState }),
      entries: (lo, hi, maxBytes) => storage.entries(lo, hi, maxBytes),
      term: (i) => storage.term(i),
      firstIndex: () => storage.firstIndex(),
      lastIndex: () => storage.lastIndex(),
      snapshot: () => this.latestSnapshot,
    };
  }

  private nextId(): string {
    this.counter += 1;
    const random = Math.floor(this.o.random() * 0xffffffff);
    return random.toString(16).padStart(8, "0") + this.counter.toString(16).padStart(8, "0").slice(-8);
  }

  private assertRunning(): void {
    if (this.fatal) throw this.fatal;
    if (this.stopped) throw new RaftError("the node stopped", "stopped");
  }
}

/** Runs a write to the log or snapshot storage; its failure becomes RaftError "storage-failed", naming the cause. */
async function persisting(write: () => Promise<void>): Promise<void> {
  try {
    await write();
  } catch (e) {
    if (e instanceof RaftError && e.code === "storage-failed") throw e;
    const cause = e instanceof Error ? e.message : String(e);
    throw new RaftError(
      `the Raft log could not be persisted (${cause}); this member stopped and serves no more writes or linearizable reads: fix the disk and restart it`,
      "storage-failed",
    );
  }
}

export function emptySnapshot(confState: ConfState): Snapshot {
  return { meta: { index: 0, term: 0, confState }, data: new Uint8Array() };
}

function hexToBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

export { encodeConfChange };
