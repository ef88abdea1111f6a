// The Raft state machine (etcd-io/raft's raft.go): roles, terms, elections and the step dispatcher. Replication
// and reads on the leader live in raft-leader.ts, the follower and candidate handlers in raft-follower.ts.
//
// Pure: no I/O, no clock, no Math.random. Inputs are messages (step), ticks and proposals; outputs accumulate in
// `msgs` and `readStates` and in the RaftLog's unstable part, collected by RawNode into a Ready.
//
// Invariants: at most one vote per term (§5.2); term never decreases (§5.1); a leader exists only in the term it
// was elected in; applied ≤ committed ≤ lastIndex.
import { applyToTracker, confChangeProblem } from "./conf-change.js";
import { payloadSize, RaftLog } from "./raft-log.js";
import { bcastAppend, onLeaderMatchAdvanced, stepLeader } from "./raft-leader.js";
import { stepCandidate, stepFollower } from "./raft-follower.js";
import { ReadOnly } from "./read-only.js";
import type { LogReader } from "./storage.js";
import { ProgressTracker } from "./tracker.js";
import {
  message,
  NONE,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ReadState,
  type Role,
  type Snapshot,
  type SoftState,
} from "./types.js";

// Conf changes travel as entry data; callers encode proposals and decode committed entries with these.
export { decodeConfChange, encodeConfChange } from "./conf-change.js";

export interface RaftConfig {
  id: NodeId;
  /** Ticks without hearing from a leader before a follower campaigns; randomized into [electionTick, 2*electionTick). */
  electionTick?: number;
  /** Ticks between a leader's heartbeats. */
  heartbeatTick?: number;
  /** Bytes of entry payload per append message (at least one entry is always sent). */
  maxSizePerMsg?: number;
  /** Appends in flight to one follower in replicate state. */
  maxInflightMsgs?: number;
  /** Payload bytes in flight to one follower (0 or absent = unlimited). */
  maxInflightBytes?: number;
  /** Payload bytes a leader accepts that are not yet committed (0 or absent = unlimited). */
  maxUncommittedEntriesSize?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  /** A seeded source in [0, 1): the only randomness, so that a run is reproducible. */
  random: () => number;
  log: LogReader;
  /** On restart: the last index the application had applied. */
  applied?: number;
}

/** Marks the vote requests of a leadership transfer, which voters grant despite their leader lease (etcd). */
export const CAMPAIGN_TRANSFER: Uint8Array = new TextEncoder().encode("campaign-transfer");

export type CampaignType = "pre-election" | "election" | "transfer";

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = "follower";
  readonly raftLog: RaftLog;
  readonly trk: ProgressTracker;
  /** Outgoing messages, collected into the next Ready. */
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  /** Leader: the voter leadership is being transferred to. */
  leadTransferee: NodeId = NONE;
  /** Leader: the index of the latest conf change proposed; a new one waits until it is applied. */
  pendingConfIndex = 0;
  /** Leader: payload bytes appended but not yet applied (bounded by maxUncommittedSize). */
  uncommittedSize = 0;
  readOnly = new ReadOnly();
  /** Leader: reads received before it committed an entry of its term (they must wait, thesis §6.4). */
  pendingReadIndexMessages: Message[] = [];
  /** Leader: entries were appended since the last broadcast, so proposals between two Readies share appends. */
  needsBroadcast = false;
  /**
   * Leader: followers whose forwarded proposals end at this index. They are told the commit index as soon as it
   * covers their proposals, so they apply and answer without waiting for the next heartbeat; followers with nothing
   * waiting learn it from the next append or heartbeat, which saves a message round per commit under load.
   */
  commitWanted = new Map<NodeId, number>();
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  private readonly random: () => number;

  constructor(config: RaftConfig) {
    this.id = config.id;
    this.electionTimeout = config.electionTick ?? 10;
    this.heartbeatTimeout = config.heartbeatTick ?? 1;
    this.maxMsgSize = config.maxSizePerMsg ?? 1024 * 1024;
    this.maxUncommittedSize = config.maxUncommittedEntriesSize || Infinity;
    this.checkQuorum = config.checkQuorum ?? true;
    this.preVote = config.preVote ?? true;
    this.random = config.random;
    validateConfig(config, this.electionTimeout, this.heartbeatTimeout);
    this.raftLog = new RaftLog(config.log, this.maxMsgSize);
    this.trk = new ProgressTracker(config.maxInflightMsgs ?? 256, config.maxInflightBytes ?? 0);
    const { hardState, confState } = config.log.initialState();
    this.trk.resetConfig(confState, this.raftLog.lastIndex() + 1);
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) this.loadState(hardState);
    if (config.applied) {
      // Only committed entries are ever applied, so the applied index proves commitment even when the hard
      // state's commit (written without sync when only it changed, as etcd allows) lagged behind a crash.
      this.raftLog.commitTo(config.applied);
      this.raftLog.appliedTo(config.applied);
    }
    this.becomeFollower(this.term, NONE);
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.raftLog.committed || hs.commit > this.raftLog.lastIndex()) {
      throw new Error(`hard state commit ${hs.commit} is outside [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
    }
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  // ---- time ----

  tick(): void {
    if (this.role === "leader") this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(message({ type: "hup", from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(message({ type: "check-quorum", from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned (etcd).
      if (this.role === "leader" && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.role !== "leader") return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(message({ type: "beat", from: this.id }));
    }
  }

  private resetRandomizedElectionTimeout(): void {
    // Raft §5.2: randomized timeouts make split votes rare.
    this.randomizedElectionTimeout = this.electionTimeout + Math.floor(this.random() * this.electionTimeout);
  }

  // ---- roles ----

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = "follower";
  }

  becomePreCandidate(): void {
    if (this.role === "leader") throw new Error("invalid transition leader -> pre-candidate");
    // Pre-vote (thesis §9.6) changes neither term nor vote, so a partitioned node cannot inflate terms.
    this.trk.resetVotes();
    this.lead = NONE;
    this.role = "pre-candidate";
  }

  becomeCandidate(): void {
    if (this.role === "leader") throw new Error("invalid transition leader -> candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = "candidate";
  }

  becomeLeader(): void {
    if (this.role === "follower") throw new Error("invalid transition follower -> leader");
    this.reset(this.term);
    this.lead = this.id;
    this.role = "leader";
    const self = this.trk.progress.get(this.id);
    if (!self) throw new Error("a leader must be a member");
    self.becomeReplicate();
    self.recentActive = true;
    // Conservatively treat any unapplied entry as a pending conf change: we cannot cheaply tell.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // §5.4.2 / §8: an entry of the new term lets earlier entries commit and lets reads proceed.
    if (!this.appendEntry([{ term: 0, index: 0, type: "normal", data: new Uint8Array(0) }])) {
      throw new Error("the empty entry of a new leader must be accepted");
    }
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, pr] of this.trk.progress) {
      const fresh = this.trk.newProgress(last + 1, pr.isLearner);
      // Our own copy counts only as far as it is durable (thesis §10.2.1); the rest is acknowledged once persisted.
      if (id === this.id) fresh.match = this.raftLog.stableLastIndex();
      this.trk.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
    this.needsBroadcast = false;
    this.commitWanted.clear();
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  /** Whether this node may campaign: a voter, not waiting to install a snapshot. */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasPendingSnapshot();
  }

  // ---- elections ----

  hup(t: CampaignType): void {
    if (this.role === "leader" || !this.promotable()) return;
    // A committed but unapplied conf change could change who votes: wait until it is applied (etcd).
    if (this.hasUnappliedConfChanges()) return;
    this.campaign(t);
  }

  campaign(t: CampaignType): void {
    if (!this.promotable()) return;
    let term: number;
    if (t === "pre-election") {
      this.becomePreCandidate();
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    const type = t === "pre-election" ? "pre-vote" : "vote";
    if (this.poll(this.id, true) === "won") {
      // A single voter wins at once.
      if (t === "pre-election") this.campaign("election");
      else this.becomeLeader();
      return;
    }
    const index = this.raftLog.lastIndex();
    const logTerm = this.raftLog.lastTerm();
    const context = t === "transfer" ? CAMPAIGN_TRANSFER : undefined;
    for (const to of [...this.trk.voters].sort()) {
      if (to !== this.id) this.send(message({ type, to, term, index, logTerm, context }));
    }
  }

  poll(from: NodeId, granted: boolean): "won" | "lost" | "pending" {
    this.trk.recordVote(from, granted);
    return this.trk.tallyVotes().result;
  }

  private hasUnappliedConfChanges(): boolean {
    const { applied, committed } = this.raftLog;
    if (applied >= committed) return false;
    return this.raftLog.slice(applied + 1, committed + 1, Infinity).some((e) => e.type === "conf-change");
  }

  // ---- the dispatcher ----

  step(m: Message): void {
    if (!this.checkTerm(m)) return;
    switch (m.type) {
      case "hup":
        this.hup(this.preVote ? "pre-election" : "election");
        return;
      case "vote":
      case "pre-vote":
        this.handleVoteRequest(m);
        return;
      default:
        this.stepRole(m);
    }
  }

  private stepRole(m: Message): void {
    switch (this.role) {
      case "leader":
        stepLeader(this, m);
        return;
      case "candidate":
      case "pre-candidate":
        stepCandidate(this, m);
        return;
      case "follower":
        stepFollower(this, m);
        return;
    }
  }

  /** Raft §5.1 term rules with etcd's pre-vote and lease exceptions. Returns whether to process m further. */
  private checkTerm(m: Message): boolean {
    if (m.term === 0) return true; // local messages, and forwarded proposals and reads, carry no term
    if (m.term > this.term) return this.onHigherTerm(m);
    if (m.term < this.term) {
      this.onStaleTerm(m);
      return false;
    }
    return true;
  }

  private onHigherTerm(m: Message): boolean {
    if (m.type === "vote" || m.type === "pre-vote") {
      const force = sameBytes(m.context, CAMPAIGN_TRANSFER);
      // Thesis §4.2.3: while we believe a leader is alive, a disruptive candidate (e.g. one just removed or
      // rejoining from a partition) must not depose it. A transfer campaign is sanctioned by the leader.
      const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
      if (!force && inLease) return false;
    }
    if (m.type === "pre-vote") return true; // a pre-vote never changes our term
    if (m.type === "pre-vote-resp" && !m.reject) return true; // the term is adopted when the pre-candidate wins
    const fromLeader = m.type === "app" || m.type === "heartbeat" || m.type === "snap";
    this.becomeFollower(m.term, fromLeader ? m.from : NONE);
    return true;
  }

  private onStaleTerm(m: Message): void {
    if ((this.checkQuorum || this.preVote) && (m.type === "heartbeat" || m.type === "app")) {
      // A stale leader (e.g. healed from a partition) would otherwise never learn of the new term, since with
      // pre-vote or checkQuorum our own vote requests may be ignored by it. Our answer carries our term.
      this.send(message({ type: "app-resp", to: m.from }));
    } else if (m.type === "pre-vote") {
      // Reject so the pre-candidate does not wait forever; it may be behind on the term.
      this.send(message({ type: "pre-vote-resp", to: m.from, term: this.term, reject: true }));
    }
  }

  private handleVoteRequest(m: Message): void {
    const respType = m.type === "vote" ? "vote-resp" : "pre-vote-resp";
    // §5.2 one vote per term; a pre-vote for a future term is granted freely (it binds nothing).
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === "pre-vote" && m.term > this.term);
    // §5.4.1 election restriction: only a candidate whose log is at least as up to date as ours.
    if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
      this.send(message({ type: respType, to: m.from, term: m.term }));
      if (m.type === "vote") {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(message({ type: respType, to: m.from, term: this.term, reject: true }));
    }
  }

  /** Queues a message; stamps our id and, except for votes and forwarded proposals/reads, our term. */
  send(m: Message): void {
    m.from = this.id;
    const isVote = m.type === "vote" || m.type === "pre-vote" || m.type === "vote-resp" || m.type === "pre-vote-resp";
    if (isVote) {
      if (m.term === 0) throw new Error(`${m.type} must carry an explicit term`);
    } else {
      if (m.term !== 0) throw new Error(`${m.type} must not carry an explicit term`);
      // Forwarded proposals and reads act as local messages at the leader (etcd).
      if (m.type !== "prop" && m.type !== "read-index") m.term = this.term;
    }
    this.msgs.push(m);
  }

  // ---- the log, on the leader ----

  /**
   * Appends entries of our term to our log. Our own copy counts towards the quorum only once it is durable
   * (ackDurable, after the driver persisted it), so the driver may send these entries to followers while its own
   * write is still in flight (thesis §10.2.1) without ever committing an entry a majority has not persisted.
   */
  appendEntry(ents: Entry[]): boolean {
    const last = this.raftLog.lastIndex();
    const stamped = ents.map((e, i) => ({ ...e, term: this.term, index: last + 1 + i }));
    if (!this.increaseUncommittedSize(stamped)) return false;
    this.raftLog.append(stamped);
    this.needsBroadcast = true;
    return true;
  }

  /** The driver persisted our log up to its stable end: as leader, count our own copy and maybe commit. */
  ackDurable(): void {
    if (this.role !== "leader") return;
    const self = this.trk.progress.get(this.id);
    if (!self?.maybeUpdate(this.raftLog.stableLastIndex())) return;
    onLeaderMatchAdvanced(this);
  }

  /** §5.4.2: advance commit to what a majority matched, but only for an entry of the current term. */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.trk.committed(), this.term);
  }

  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrZero(this.raftLog.committed) === this.term;
  }

  private increaseUncommittedSize(ents: Entry[]): boolean {
    const size = payloadSize(ents);
    // Always accept into an empty budget, so a single oversized proposal can still make progress (etcd).
    if (this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > this.maxUncommittedSize) return false;
    this.uncommittedSize += size;
    return true;
  }

  reduceUncommittedSize(size: number): void {
    this.uncommittedSize = Math.max(0, this.uncommittedSize - size);
  }

  // ---- snapshots and membership ----

  /** Installs a leader's snapshot on a follower; false when it is stale or already covered by our log. */
  restore(s: Snapshot): boolean {
    if (s.meta.index <= this.raftLog.committed) return false;
    if (this.role !== "follower") {
      // Only followers receive snapshots; defend against a bug as etcd does, by moving on to a new term.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = s.meta.confState;
    if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id)) return false;
    if (this.raftLog.matchTerm(s.meta.index, s.meta.term)) {
      // We already have the snapshot's last entry: only commit moves (Log Matching gives us the rest).
      this.raftLog.commitTo(s.meta.index);
      return false;
    }
    this.raftLog.restore(s);
    this.trk.resetConfig(cs, this.raftLog.lastIndex() + 1);
    this.trk.progress.get(this.id)?.maybeUpdate(this.raftLog.lastIndex());
    return true;
  }

  /** Applies a committed conf change (one server at a time); an invalid one is a no-op on every node. */
  applyConfChange(cc: ConfChange): ConfState {
    if (confChangeProblem(this.trk, cc) === undefined) applyToTracker(this.trk, cc, this.raftLog.lastIndex() + 1);
    if (this.role === "leader") this.afterConfChangeAsLeader();
    return this.trk.confState();
  }

  private afterConfChangeAsLeader(): void {
    if (!this.trk.voters.has(this.id)) {
      // Thesis §4.2.2: a leader removed from the configuration steps down once the change is committed; it first
      // tells the others the commit index, so they apply the change (and stop counting it) before electing.
      bcastAppend(this);
      this.becomeFollower(this.term, NONE);
      return;
    }
    if (this.leadTransferee !== NONE && !this.trk.voters.has(this.leadTransferee)) this.abortLeaderTransfer();
    // A different quorum may commit more; a new member needs probing.
    this.maybeCommit();
    bcastAppend(this);
  }
}

function validateConfig(config: RaftConfig, electionTick: number, heartbeatTick: number): void {
  if (config.id === NONE) throw new Error("raft config: id must not be empty");
  if (heartbeatTick <= 0) throw new Error("raft config: heartbeatTick must be positive");
  if (electionTick <= heartbeatTick) throw new Error("raft config: electionTick must exceed heartbeatTick");
  if (typeof config.random !== "function") throw new Error("raft config: a seeded random source is required");
  if ((config.maxInflightMsgs ?? 256) <= 0) throw new Error("raft config: maxInflightMsgs must be positive");
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
