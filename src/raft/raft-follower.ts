// The follower's and the (pre-)candidate's halves of the step function (etcd-io/raft's stepFollower and
// stepCandidate), and the receiving side of AppendEntries, heartbeats and snapshots.
//
// Invariants: a follower only accepts entries that pass the log-matching check (§5.3) and never truncates
// committed entries; it only forwards proposals and reads to a known leader, and otherwise throws RaftError
// "no-leader" for local requests.
import type { Raft } from "./raft.js";
import { requireContext } from "./read-only.js";
import { message, NONE, RaftError, type Message } from "./types.js";

export function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case "prop":
      if (r.lead === NONE) throw new RaftError("no leader to forward the proposal to", "no-leader");
      r.send({ ...m, to: r.lead });
      return;
    case "app":
    case "heartbeat":
    case "snap":
      r.electionElapsed = 0;
      r.lead = m.from;
      fromLeader(r, m);
      return;
    case "timeout-now":
      // Thesis §3.10: the leader asks us to campaign at once, skipping pre-vote (the leader sanctions it).
      r.hup("transfer");
      return;
    case "read-index":
      if (r.lead === NONE) {
        if (isLocal(r, m)) throw new RaftError("no leader to confirm the read", "no-leader");
        return;
      }
      requireContext(m);
      r.send({ ...m, to: r.lead });
      return;
    case "read-index-resp":
      r.readStates.push({ index: m.index, requestCtx: requireContext(m) });
      return;
    case "transfer-leader":
      // A local request (types.ts): it cannot be forwarded over the network, so the caller must ask the leader.
      throw new RaftError(
        `leadership transfer must be requested on the leader (${r.lead || "unknown"})`,
        r.lead === NONE ? "no-leader" : "proposal-dropped",
      );
    default:
      return;
  }
}

export function stepCandidate(r: Raft, m: Message): void {
  const myVoteResp = r.role === "pre-candidate" ? "pre-vote-resp" : "vote-resp";
  switch (m.type) {
    case "prop":
      throw new RaftError("no leader: an election is in progress", "no-leader");
    case "read-index":
      if (isLocal(r, m)) throw new RaftError("no leader: an election is in progress", "no-leader");
      return;
    case "transfer-leader":
      throw new RaftError("no leader: an election is in progress", "no-leader");
    case "app":
    case "heartbeat":
    case "snap":
      // §5.2: a candidate hearing from a leader of its own term (or newer) returns to follower.
      r.becomeFollower(m.term, m.from);
      fromLeader(r, m);
      return;
    case "pre-vote-resp":
    case "vote-resp":
      if (m.type === myVoteResp) tally(r, m);
      return;
    default:
      // timeout-now: we are already campaigning.
      return;
  }
}

function tally(r: Raft, m: Message): void {
  const result = r.poll(m.from, !m.reject);
  if (result === "won") {
    if (r.role === "pre-candidate") r.campaign("election");
    else r.becomeLeader();
  } else if (result === "lost") {
    // Stay in the term (a pre-candidate never left it) and wait for a leader or the next timeout.
    r.becomeFollower(r.term, NONE);
  }
}

function isLocal(r: Raft, m: Message): boolean {
  return m.from === NONE || m.from === r.id;
}

function fromLeader(r: Raft, m: Message): void {
  if (m.type === "app") handleAppendEntries(r, m);
  else if (m.type === "heartbeat") handleHeartbeat(r, m);
  else handleSnapshot(r, m);
}

function handleAppendEntries(r: Raft, m: Message): void {
  const log = r.raftLog;
  if (m.index < log.committed) {
    // Already committed here: tell the leader how far we are so it skips ahead.
    r.send(message({ type: "app-resp", to: m.from, index: log.committed }));
    return;
  }
  const lastNew = log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
  if (lastNew !== undefined) {
    r.send(message({ type: "app-resp", to: m.from, index: lastNew }));
    return;
  }
  // §5.3 consistency check failed. Fast back-up (etcd): hint the largest index whose term is ≤ the leader's
  // term at m.index, so the leader can skip a whole term of conflicting entries per round trip.
  const hint = log.findConflictByTerm(Math.min(m.index, log.lastIndex()), m.logTerm);
  r.send(
    message({ type: "app-resp", to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term }),
  );
}

function handleHeartbeat(r: Raft, m: Message): void {
  r.raftLog.commitTo(m.commit);
  r.send(message({ type: "heartbeat-resp", to: m.from, context: m.context }));
}

function handleSnapshot(r: Raft, m: Message): void {
  if (!m.snapshot) throw new Error("snap message without a snapshot");
  const index = r.restore(m.snapshot) ? r.raftLog.lastIndex() : r.raftLog.committed;
  r.send(message({ type: "app-resp", to: m.from, index }));
}
