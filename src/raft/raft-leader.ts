// The leader's half of the step function (etcd-io/raft's stepLeader): proposals, replication with flow control,
// commit, CheckQuorum, linearizable reads and leadership transfer.
//
// Invariants: a follower in probe state has at most one append outstanding; in replicate state at most
// maxInflightMsgs (and maxInflightBytes); in snapshot state none. Commit only ever counts entries of the current
// term (§5.4.2). Proposals are never dropped silently: a local proposal that cannot be accepted throws RaftError.
import { confChangeProblem, decodeConfChange } from "./conf-change.js";
import type { Progress } from "./progress.js";
import type { Raft } from "./raft.js";
import { payloadSize } from "./raft-log.js";
import { requireContext } from "./read-only.js";
import { message, NONE, RaftError, type Entry, type Message, type NodeId, type Snapshot } from "./types.js";

export function stepLeader(r: Raft, m: Message): void {
  switch (m.type) {
    case "beat":
      bcastHeartbeat(r, r.readOnly.lastPendingRequestCtx());
      return;
    case "check-quorum":
      checkQuorum(r);
      return;
    case "prop":
      propose(r, m);
      return;
    case "read-index":
      readIndex(r, m);
      return;
    default:
      break;
  }
  const pr = r.trk.progress.get(m.from);
  if (!pr) return; // a response from a node no longer in the configuration
  switch (m.type) {
    case "app-resp":
      handleAppendResponse(r, m, pr);
      return;
    case "heartbeat-resp":
      handleHeartbeatResponse(r, m, pr);
      return;
    case "snap-status":
      handleSnapStatus(m, pr);
      return;
    case "unreachable":
      // Appends were probably lost: stop streaming and probe again.
      if (pr.state === "replicate") pr.becomeProbe();
      return;
    case "transfer-leader":
      handleTransferLeader(r, m.from, pr);
      return;
    default:
      // app/heartbeat/snap of our own term cannot come from another leader (Election Safety, §5.2); the rest
      // (stale vote answers, timeout-now, read-index-resp) mean nothing to a leader.
      return;
  }
}

/** CheckQuorum (thesis §6.2): a leader that has not heard from a quorum in an election timeout steps down. */
function checkQuorum(r: Raft): void {
  if (!r.trk.quorumActive()) r.becomeFollower(r.term, NONE);
  for (const [id, pr] of r.trk.progress) if (id !== r.id) pr.recentActive = false;
}

function propose(r: Raft, m: Message): void {
  if (m.entries.length === 0) throw new Error("empty proposal");
  if (!r.trk.progress.has(r.id)) {
    throw new RaftError("this leader is no longer in the configuration", "proposal-dropped");
  }
  if (r.leadTransferee !== NONE) {
    throw new RaftError(`leadership transfer to ${r.leadTransferee} in progress`, "transfer-in-progress");
  }
  const ents = screenConfChanges(r, m);
  if (!r.appendEntry(ents)) {
    throw new RaftError("too many uncommitted bytes; retry once the log catches up", "proposal-dropped");
  }
  if (m.from !== r.id && m.from !== NONE) r.commitWanted.set(m.from, r.raftLog.lastIndex());
}

/**
 * One conf change at a time (thesis §4.1): while one is unapplied, another is refused. A local proposal gets a
 * RaftError; a forwarded one (whose proposer we cannot answer) becomes an empty entry, as etcd does.
 */
function screenConfChanges(r: Raft, m: Message): Entry[] {
  const local = m.from === r.id || m.from === NONE;
  let pendingIndex = r.pendingConfIndex;
  const base = r.raftLog.lastIndex();
  const ents = m.entries.map((e, i): Entry => {
    if (e.type !== "conf-change") return e;
    const problem = confChangeRefusal(r, e, pendingIndex);
    if (problem === undefined) {
      pendingIndex = base + i + 1;
      return e;
    }
    if (local) throw new RaftError(`conf change refused: ${problem}`, "proposal-dropped");
    return { ...e, type: "normal", data: new Uint8Array(0) };
  });
  r.pendingConfIndex = pendingIndex;
  return ents;
}

function confChangeRefusal(r: Raft, e: Entry, pendingIndex: number): string | undefined {
  if (pendingIndex > r.raftLog.applied) return "another conf change is not yet applied";
  try {
    return confChangeProblem(r.trk, decodeConfChange(e.data));
  } catch (err) {
    if (err instanceof RaftError) return err.message;
    throw err;
  }
}

// ---- replication ----

/** Sends an append (even an empty one, e.g. to probe) to one follower unless it is paused. */
export function sendAppend(r: Raft, to: NodeId): void {
  maybeSendAppend(r, to, true);
}

/** Streams appends to `to` until it is paused (probe sent, inflights full, snapshot) or has everything. */
function sendAppendsUntilPaused(r: Raft, to: NodeId): void {
  while (maybeSendAppend(r, to, false)) {
    /* keep pipelining */
  }
}

/** Sends new entries to every follower; called when the leader appended (once per Ready, to batch proposals). */
export function bcastAppend(r: Raft): void {
  r.needsBroadcast = false;
  for (const id of r.trk.ids()) {
    if (id === r.id) continue;
    sendAppend(r, id);
    sendAppendsUntilPaused(r, id);
  }
}

function maybeSendAppend(r: Raft, to: NodeId, sendIfEmpty: boolean): boolean {
  const pr = mustProgress(r, to);
  if (pr.isPaused()) return false;
  const prevIndex = pr.next - 1;
  let prevTerm: number;
  let ents: Entry[];
  try {
    prevTerm = r.raftLog.term(prevIndex);
    ents = r.raftLog.entriesFrom(pr.next, r.maxMsgSize);
  } catch (err) {
    // The entries it needs are compacted: only a snapshot can bring it up to date.
    if (err instanceof RaftError && err.code === "compacted") return maybeSendSnapshot(r, to, pr);
    throw err;
  }
  if (ents.length === 0 && !sendIfEmpty) return false;
  r.send(message({ type: "app", to, index: prevIndex, logTerm: prevTerm, entries: ents, commit: r.raftLog.committed }));
  pr.sentEntries(ents.length, payloadSize(ents));
  return true;
}

function maybeSendSnapshot(r: Raft, to: NodeId, pr: Progress): boolean {
  // A snapshot is expensive: do not send one to a peer that may be down (etcd).
  if (!pr.recentActive) return false;
  let snapshot: Snapshot;
  try {
    snapshot = r.raftLog.snapshot();
  } catch (err) {
    if (err instanceof RaftError && err.code === "unavailable") return false; // being created; retry later
    throw err;
  }
  if (snapshot.meta.index === 0) throw new Error("entries are compacted but there is no snapshot");
  pr.becomeSnapshot(snapshot.meta.index);
  r.send(message({ type: "snap", to, snapshot }));
  return true;
}

function handleAppendResponse(r: Raft, m: Message, pr: Progress): void {
  pr.recentActive = true;
  if (m.reject) {
    handleAppendRejection(r, m, pr);
    return;
  }
  // A follower that is already up to date answers a probe with the index we already know: it is in sync.
  const probeMatched = pr.state === "probe" && pr.match === m.index;
  if (!pr.maybeUpdate(m.index) && !probeMatched) return;
  if (pr.state === "probe") {
    pr.becomeReplicate();
  } else if (pr.state === "snapshot" && pr.match + 1 >= r.raftLog.firstIndex()) {
    // The snapshot (or entries) brought it to where our log continues: stream from there.
    pr.becomeProbe();
    pr.becomeReplicate();
  } else if (pr.state === "replicate") {
    pr.inflights.freeLE(m.index);
  }
  onLeaderMatchAdvanced(r);
  sendAppendsUntilPaused(r, m.from);
  if (m.from === r.leadTransferee && pr.match === r.raftLog.lastIndex()) sendTimeoutNow(r, m.from);
}

/**
 * A member's durable log (a follower's, or our own) grew: the commit index may move. When it does, pending reads
 * may proceed, and followers whose forwarded proposals are now committed are told at once (an append, empty if
 * need be). A follower's reads need no such message: the heartbeat round that confirms them carries the index.
 */
export function onLeaderMatchAdvanced(r: Raft): void {
  if (!r.maybeCommit()) return;
  releasePendingReadIndexMessages(r);
  for (const [id, index] of r.commitWanted) {
    if (index > r.raftLog.committed) continue;
    r.commitWanted.delete(id);
    if (r.trk.progress.has(id)) sendAppend(r, id);
  }
}

/** Fast back-up (etcd): jump next back by term using the follower's hint instead of one entry per round trip. */
function handleAppendRejection(r: Raft, m: Message, pr: Progress): void {
  let hint = m.rejectHint;
  if (m.logTerm > 0) hint = r.raftLog.findConflictByTerm(m.rejectHint, m.logTerm).index;
  if (!pr.maybeDecrTo(m.index, hint)) return;
  if (pr.state === "replicate") pr.becomeProbe();
  sendAppend(r, m.from);
}

function handleHeartbeatResponse(r: Raft, m: Message, pr: Progress): void {
  pr.recentActive = true;
  pr.probeAcked();
  // The follower is alive: if an append was lost while the window was full, make room to resend.
  if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
  if (pr.match < r.raftLog.lastIndex() || pr.state === "probe") sendAppend(r, m.from);
  if (!m.context || m.context.byteLength === 0) return;
  const acks = r.readOnly.recvAck(m.from, m.context);
  if (!acks || !r.trk.quorumAcked(acks)) return;
  for (const rs of r.readOnly.advance(m.context)) respondToReadIndex(r, rs.req, rs.index);
}

function handleSnapStatus(m: Message, pr: Progress): void {
  if (pr.state !== "snapshot") return;
  // On failure forget the snapshot and probe from what we know; on success probe after it.
  if (m.reject) pr.pendingSnapshot = 0;
  pr.becomeProbe();
  // Wait for a heartbeat answer before probing, as etcd does: the follower may still be installing it.
  pr.probeSent = true;
}

function bcastHeartbeat(r: Raft, ctx: Uint8Array | undefined): void {
  for (const id of r.trk.ids()) {
    if (id === r.id) continue;
    const pr = mustProgress(r, id);
    // Never tell a follower to commit beyond what it is known to have (it may not have it yet).
    const commit = Math.min(pr.match, r.raftLog.committed);
    r.send(message({ type: "heartbeat", to: id, commit, context: ctx }));
  }
}

// ---- linearizable reads (thesis §6.4, etcd ReadOnlySafe) ----

function readIndex(r: Raft, m: Message): void {
  requireContext(m);
  if (r.trk.isSingleton()) {
    respondToReadIndex(r, m, r.raftLog.committed);
    return;
  }
  // Until it commits an entry of its term, a new leader's commit index may be behind the true one.
  if (!r.committedEntryInCurrentTerm()) {
    r.pendingReadIndexMessages.push(m);
    return;
  }
  confirmReads(r, [m]);
}

/** Records the reads at the current commit index and starts one heartbeat round that confirms them all. */
function confirmReads(r: Raft, reqs: Message[]): void {
  for (const req of reqs) {
    r.readOnly.addRequest(r.raftLog.committed, req);
    r.readOnly.recvAck(r.id, requireContext(req));
  }
  const last = reqs[reqs.length - 1];
  bcastHeartbeat(r, last.context);
}

function releasePendingReadIndexMessages(r: Raft): void {
  if (r.pendingReadIndexMessages.length === 0 || !r.committedEntryInCurrentTerm()) return;
  const reqs = r.pendingReadIndexMessages;
  r.pendingReadIndexMessages = [];
  confirmReads(r, reqs);
}

function respondToReadIndex(r: Raft, req: Message, index: number): void {
  const ctx = requireContext(req);
  if (req.from === NONE || req.from === r.id) {
    r.readStates.push({ index, requestCtx: ctx });
    return;
  }
  r.send(message({ type: "read-index-resp", to: req.from, index, context: ctx }));
}

// ---- leadership transfer (thesis §3.10) ----

function handleTransferLeader(r: Raft, target: NodeId, pr: Progress): void {
  if (pr.isLearner) return; // only a voter can become leader
  if (r.leadTransferee !== NONE) {
    if (r.leadTransferee === target) return; // already under way
    r.abortLeaderTransfer();
  }
  if (target === r.id) return; // we are already the leader
  // The transfer must finish within an election timeout, counted from now.
  r.electionElapsed = 0;
  r.leadTransferee = target;
  if (pr.match === r.raftLog.lastIndex()) sendTimeoutNow(r, target);
  else sendAppend(r, target);
}

function sendTimeoutNow(r: Raft, to: NodeId): void {
  r.send(message({ type: "timeout-now", to }));
}

function mustProgress(r: Raft, id: NodeId): Progress {
  const pr = r.trk.progress.get(id);
  if (!pr) throw new Error(`no progress for ${id}`);
  return pr;
}
