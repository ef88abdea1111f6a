// Safety and liveness checkers, run after every simulator step. Each check is a separate function that returns a
// violation description or undefined. History (leaders per term, committed entries, applied entries) lives in a
// SafetyHistory that spans the whole run, across crashes and restarts.
//
//   Election Safety      at most one leader per term, over the whole run
//   Log Matching         two logs with an entry of the same index and term are identical up to it
//   Commit Stability     an entry once seen committed (index ≤ some node's commit) never changes
//   Leader Completeness  an entry committed before term T began is in the log of every leader of term T
//   State Machine Safety no two nodes apply different commands at one index; each node applies in index order
//   Configuration Agreement  live nodes that applied the same index see the same membership
//   Exactly Once         (end of run) every acknowledged proposal is applied once on every live node, same order
import type { SimLogStorage } from "./sim-storage.js";
import type { KvMachine } from "./kv-machine.js";
import type { ConfState, Entry, NodeId, Role } from "../types.js";

export interface NodeView {
  id: NodeId;
  live: boolean;
  storage: SimLogStorage;
  machine: KvMachine;
  status?: { term: number; role: Role; commit: number; applied: number };
  /** The membership the node applies (live nodes). */
  membership?: ConfState;
  /** A node added at runtime boots with a provisional membership: compare it only once applied reaches this. */
  joinedAt?: number;
}

interface Committed {
  term: number;
  data: Uint8Array;
  /** The highest term any node had when this entry was first seen committed. */
  seenAtTerm: number;
}

export class SafetyHistory {
  readonly leaders = new Map<number, NodeId>();
  readonly committed = new Map<number, Committed>();
  readonly applied = new Map<number, { term: number; command: string; node: NodeId }>();
  readonly cursors = new WeakMap<KvMachine, number>();
  maxCommitted = 0;

  /** Called whenever a node is seen as leader; returns a violation if another node led that term. */
  noteLeader(id: NodeId, term: number): string | undefined {
    const other = this.leaders.get(term);
    if (other !== undefined && other !== id) return `term ${term} has two leaders: ${other} and ${id}`;
    this.leaders.set(term, id);
    return undefined;
  }
}

export function checkElectionSafety(h: SafetyHistory, nodes: NodeView[]): string | undefined {
  for (const n of nodes) {
    if (n.live && n.status?.role === "leader") {
      const v = h.noteLeader(n.id, n.status.term);
      if (v) return v;
    }
  }
  return undefined;
}

export function checkLogMatching(nodes: NodeView[]): string | undefined {
  for (let a = 0; a < nodes.length; a++) {
    for (let b = a + 1; b < nodes.length; b++) {
      const v = matchPair(nodes[a], nodes[b]);
      if (v) return v;
    }
  }
  return undefined;
}

function matchPair(a: NodeView, b: NodeView): string | undefined {
  const lo = Math.max(a.storage.firstIndex(), b.storage.firstIndex());
  const hi = Math.min(a.storage.lastIndex(), b.storage.lastIndex());
  let top = 0;
  for (let i = hi; i >= lo; i--) {
    if (a.storage.term(i) === b.storage.term(i)) {
      top = i;
      break;
    }
  }
  for (let i = lo; i <= top; i++) {
    const x = entryAt(a.storage, i);
    const y = entryAt(b.storage, i);
    if (!sameEntry(x, y)) {
      return `${a.id} and ${b.id} agree on index ${top} (term ${a.storage.term(top)}) but differ at ${i}: ${describe(x)} vs ${describe(y)}`;
    }
  }
  return undefined;
}

/** Records entries at or below each node's commit index; a committed entry that changes is a violation. */
export function checkCommitStability(h: SafetyHistory, nodes: NodeView[]): string | undefined {
  const maxTerm = Math.max(0, ...nodes.map((n) => termOf(n)));
  for (const n of nodes) {
    const commit = n.live && n.status ? n.status.commit : n.storage.initialState().hardState.commit;
    const hi = Math.min(commit, n.storage.lastIndex());
    for (let i = n.storage.firstIndex(); i <= hi; i++) {
      const e = entryAt(n.storage, i);
      const seen = h.committed.get(i);
      if (!seen) {
        h.committed.set(i, { term: e.term, data: e.data, seenAtTerm: maxTerm });
        h.maxCommitted = Math.max(h.maxCommitted, i);
      } else if (seen.term !== e.term || !sameBytes(seen.data, e.data)) {
        return `${n.id} holds ${describe(e)} at committed index ${i}, which was committed as term ${seen.term}`;
      }
    }
  }
  return undefined;
}

export function checkLeaderCompleteness(h: SafetyHistory, nodes: NodeView[]): string | undefined {
  for (const n of nodes) {
    if (!n.live || n.status?.role !== "leader") continue;
    const term = n.status.term;
    for (let i = n.storage.firstIndex(); i <= h.maxCommitted; i++) {
      const c = h.committed.get(i);
      if (!c || c.seenAtTerm >= term) continue;
      if (i > n.storage.lastIndex()) return `leader ${n.id} of term ${term} lacks committed index ${i} (its last index is ${n.storage.lastIndex()})`;
      const t = n.storage.term(i);
      if (t !== c.term) return `leader ${n.id} of term ${term} has term ${t} at committed index ${i} (committed term ${c.term})`;
    }
  }
  return undefined;
}

export function checkStateMachineSafety(h: SafetyHistory, nodes: NodeView[]): string | undefined {
  for (const n of nodes) {
    const records = n.machine.records;
    let cursor = h.cursors.get(n.machine) ?? 0;
    for (; cursor < records.length; cursor++) {
      const r = records[cursor];
      const prev = cursor > 0 ? records[cursor - 1].index : 0;
      if (r.index <= prev) return `${n.id} applied index ${r.index} after index ${prev}`;
      const seen = h.applied.get(r.index);
      if (!seen) h.applied.set(r.index, { term: r.term, command: r.command, node: n.id });
      else if (seen.command !== r.command || seen.term !== r.term) {
        return `index ${r.index}: ${seen.node} applied ${seen.command}@${seen.term}, ${n.id} applied ${r.command}@${r.term}`;
      }
    }
    h.cursors.set(n.machine, cursor);
  }
  return undefined;
}

export function checkConfigurationAgreement(nodes: NodeView[]): string | undefined {
  const byApplied = new Map<number, { id: NodeId; conf: string }>();
  for (const n of nodes) {
    if (!n.live || !n.status || !n.membership || n.status.applied < (n.joinedAt ?? 0)) continue;
    const conf = JSON.stringify({ voters: [...n.membership.voters].sort(), learners: [...n.membership.learners].sort() });
    const other = byApplied.get(n.status.applied);
    if (!other) byApplied.set(n.status.applied, { id: n.id, conf });
    else if (other.conf !== conf) return `at applied index ${n.status.applied}, ${other.id} has ${other.conf} but ${n.id} has ${conf}`;
  }
  return undefined;
}

export interface Acknowledged {
  id: string;
  index: number;
  term: number;
}

/** End of run: every acknowledged proposal applied exactly once on each live node, all in the same order. */
export function checkExactlyOnce(h: SafetyHistory, acked: Acknowledged[], nodes: NodeView[]): string | undefined {
  const live = nodes.filter((n) => n.live);
  for (const a of acked) {
    const applied = h.applied.get(a.index);
    if (applied && applied.term !== a.term) return `proposal ${a.id} acknowledged at ${a.index}@${a.term} but ${applied.node} applied term ${applied.term}`;
  }
  for (const n of live) {
    const counts = new Map<string, number>();
    for (const id of n.machine.ids) counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const [id, count] of counts) if (count > 1) return `${n.id} applied command ${id} ${count} times`;
    for (const a of acked) if (!counts.has(a.id)) return `${n.id} never applied acknowledged proposal ${a.id} (index ${a.index})`;
  }
  for (const n of live.slice(1)) {
    const first = live[0].machine.ids;
    const ids = n.machine.ids;
    const diff = ids.findIndex((id, i) => first[i] !== id);
    if (ids.length !== first.length || diff >= 0) {
      return `${live[0].id} and ${n.id} applied different sequences (lengths ${first.length}, ${ids.length}; first difference at ${diff})`;
    }
  }
  return undefined;
}

function termOf(n: NodeView): number {
  return n.live && n.status ? n.status.term : n.storage.initialState().hardState.term;
}

function entryAt(storage: SimLogStorage, i: number): Entry {
  return storage.entries(i, i + 1, Number.MAX_SAFE_INTEGER)[0];
}

function sameEntry(x: Entry, y: Entry): boolean {
  return x.term === y.term && x.index === y.index && x.type === y.type && sameBytes(x.data, y.data);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function describe(e: Entry): string {
  return `{index ${e.index}, term ${e.term}, ${e.type}, ${e.data.length} bytes}`;
}
