// The thread-unsafe, I/O-free handle on the Raft core (etcd-io/raft's RawNode). The caller drives it:
//   tick() on a timer, step(msg) for each message received, propose()/readIndex()/... on request, and
//   while hasReady(): rd = ready(); persist rd.hardState/entries/snapshot; send rd.messages; apply
//   rd.snapshot and rd.committedEntries; advance(rd).
//
// Invariants: ready() and advance() alternate strictly; committedEntries handed out are persisted locally
// (index below the unstable part) — so they may be applied before or after persisting the Ready's own entries;
// a Ready's messages may depend on its hardState/entries (see mayDepartBeforePersist): those that do must wait
// until they are durable (mustSync); the leader's appends and heartbeats need not (thesis §10.2.1), because the
// leader counts its own copy of an entry only once advance() reports it persisted.
import { decodeConfChange, encodeConfChange } from "./conf-change.js";
import type { ProgressState } from "./progress.js";
import { Raft, type RaftConfig } from "./raft.js";
import { bcastAppend } from "./raft-leader.js";
import { payloadSize } from "./raft-log.js";
import {
  isLocalMessage,
  isResponseMessage,
  message,
  RaftError,
  type ConfChange,
  type ConfState,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type Role,
  type SoftState,
} from "./types.js";

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
  recentActive: boolean;
  /** Appends in flight (replicate state). */
  inflight: number;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lead: NodeId;
  role: Role;
  lastIndex: number;
  leadTransferee: NodeId;
  confState: ConfState;
  /** Leader only: every member's replication progress (learners included, to judge when one has caught up). */
  progress?: Map<NodeId, ProgressStatus>;
}

export class RawNode {
  private readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private awaitingAdvance = false;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (with pre-vote when configured). */
  campaign(): void {
    this.raft.step(message({ type: "hup", from: this.raft.id }));
  }

  /** Proposes a command; throws RaftError ("no-leader", "transfer-in-progress", "proposal-dropped") if refused. */
  propose(data: Uint8Array): void {
    this.raft.step(message({ type: "prop", from: this.raft.id, entries: [{ term: 0, index: 0, type: "normal", data }] }));
  }

  /** Proposes a membership change; it takes effect when the caller applies the committed entry (applyConfChange). */
  proposeConfChange(cc: ConfChange): void {
    const data = encodeConfChange(cc);
    this.raft.step(
      message({ type: "prop", from: this.raft.id, entries: [{ term: 0, index: 0, type: "conf-change", data }] }),
    );
  }

  /**
   * Steps a message received from the network. Local message types and responses from unknown peers are ignored
   * (etcd returns an error for both). A forwarded proposal the leader cannot accept is dropped here: its proposer,
   * on another node, will time out, as with etcd.
   */
  step(m: Message): void {
    if (isLocalMessage(m.type)) return;
    if (isResponseMessage(m.type) && !this.raft.trk.progress.has(m.from)) return;
    try {
      this.raft.step(m);
    } catch (err) {
      if (m.type === "prop" && err instanceof RaftError) return;
      throw err;
    }
  }

  /** Asks for a linearizable read; a ReadState with the same (non-empty) ctx appears in a later Ready. */
  readIndex(ctx: Uint8Array): void {
    this.raft.step(message({ type: "read-index", context: ctx }));
  }

  /** Leader only: hands leadership to voter `to` once it is up to date (thesis §3.10). */
  transferLeader(to: NodeId): void {
    this.raft.step(message({ type: "transfer-leader", from: to }));
  }

  /** The transport failed to reach `id`: stop streaming appends to it and probe instead. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(message({ type: "unreachable", from: id }));
  }

  /** The transport finished sending a snapshot to `id` (ok) or gave up (not ok). */
  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(message({ type: "snap-status", from: id, reject: !ok }));
  }

  /** Applies a committed conf-change entry's change; returns the configuration now in force. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Convenience for the apply loop: the change carried by a conf-change entry. */
  static decodeConfChange(data: Uint8Array): ConfChange {
    return decodeConfChange(data);
  }

  hasReady(): boolean {
    if (this.awaitingAdvance) return false;
    const r = this.raft;
    return (
      (r.needsBroadcast && r.role === "leader") ||
      !sameSoftState(r.softState(), this.prevSoftState) ||
      !sameHardState(r.hardState(), this.prevHardState) ||
      r.raftLog.hasPendingSnapshot() ||
      r.msgs.length > 0 ||
      r.raftLog.unstable.entries.length > 0 ||
      r.raftLog.hasNextCommittedEntries() ||
      r.readStates.length > 0
    );
  }

  /** Everything the caller must do now; call advance(rd) once done, before the next ready(). */
  ready(): Ready {
    if (this.awaitingAdvance) throw new Error("ready() called again before advance()");
    const r = this.raft;
    // Proposals appended since the last Ready go out together (batching).
    if (r.needsBroadcast && r.role === "leader") bcastAppend(r);
    const softState = r.softState();
    const hardState = r.hardState();
    const entries = r.raftLog.unstableEntries();
    const rd: Ready = {
      entries,
      committedEntries: r.raftLog.nextCommittedEntries(),
      messages: r.msgs,
      readStates: r.readStates,
      mustSync: entries.length > 0 || hardState.term !== this.prevHardState.term || hardState.vote !== this.prevHardState.vote,
    };
    if (!sameSoftState(softState, this.prevSoftState)) rd.softState = softState;
    if (!sameHardState(hardState, this.prevHardState)) rd.hardState = hardState;
    if (r.raftLog.unstable.snapshot) rd.snapshot = r.raftLog.unstable.snapshot;
    r.msgs = [];
    r.readStates = [];
    this.prevSoftState = softState;
    this.prevHardState = hardState;
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted) r.raftLog.acceptApplying(lastCommitted.index);
    this.awaitingAdvance = true;
    return rd;
  }

  /** The Ready was persisted, sent and applied: its entries are stable and its committed entries applied. */
  advance(rd: Ready): void {
    if (!this.awaitingAdvance) throw new Error("advance() without a pending ready()");
    this.awaitingAdvance = false;
    const log = this.raft.raftLog;
    if (rd.snapshot) {
      log.stableSnapTo(rd.snapshot.meta.index);
      if (rd.snapshot.meta.index > log.applied) log.appliedTo(rd.snapshot.meta.index);
    }
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) log.stableTo(lastEntry.index, lastEntry.term);
    // Our own entries are durable now: as leader, they count towards the commit from here on.
    this.raft.ackDurable();
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted) {
      log.appliedTo(lastCommitted.index);
      this.raft.reduceUncommittedSize(payloadSize(rd.committedEntries));
    }
  }

  status(): Status {
    const r = this.raft;
    const status: Status = {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.raftLog.committed,
      applied: r.raftLog.applied,
      lead: r.lead,
      role: r.role,
      lastIndex: r.raftLog.lastIndex(),
      leadTransferee: r.leadTransferee,
      confState: r.trk.confState(),
    };
    if (r.role === "leader") {
      status.progress = new Map(
        r.trk.ids().map((id) => {
          const pr = r.trk.progress.get(id);
          if (!pr) throw new Error(`no progress for ${id}`);
          const { match, next, state, isLearner, recentActive } = pr;
          return [id, { match, next, state, isLearner, recentActive, inflight: pr.inflights.count() }];
        }),
      );
    }
    return status;
  }
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}


/**
 * Whether a message may be sent before its Ready's entries and hard state are persisted. Answers to appends and
 * votes are promises about durable state, and vote requests come with our own (counted) vote: those wait. The
 * rest (appends, heartbeats, snapshots, forwarded proposals and reads) carry no promise about our own disk.
 */
export function mayDepartBeforePersist(m: Message): boolean {
  switch (m.type) {
    case "app":
    case "heartbeat":
    case "heartbeat-resp":
    case "snap":
    case "prop":
    case "read-index":
    case "read-index-resp":
    case "timeout-now":
      return true;
    default:
      return false;
  }
}
