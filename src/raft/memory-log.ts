// An in-memory LogStorage (etcd-io/raft's MemoryStorage): the copy of what has been persisted, used by tests, the
// simulator and the driver. The core only reads it (LogReader); the caller writes it from each Ready.
//
// Layout: ents[0] is a dummy entry at the snapshot's index and term, so term(firstIndex - 1) is always known;
// real entries follow contiguously. Invariants: ents[0].index = snapshot.meta.index; ents[i].index = ents[0].index + i.
import { limitSize } from "./raft-log.js";
import type { LogStorage } from "./storage.js";
import { NONE, RaftError, type ConfState, type Entry, type HardState, type Snapshot } from "./types.js";

const EMPTY = new Uint8Array(0);

export class MemoryLog implements LogStorage {
  private hardState: HardState = { term: 0, vote: NONE, commit: 0 };
  private snap: Snapshot;
  private confState: ConfState;
  private ents: Entry[];

  /** A fresh, empty log whose initial configuration is `conf` (how a new cluster is bootstrapped). */
  constructor(conf: Partial<ConfState> = {}) {
    this.confState = { voters: [...(conf.voters ?? [])], learners: [...(conf.learners ?? [])] };
    this.snap = { meta: { index: 0, term: 0, confState: this.confState }, data: EMPTY };
    this.ents = [dummy(0, 0)];
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.hardState }, confState: cloneConf(this.confState) };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) throw new RaftError(`entries from ${lo}: compacted up to ${offset}`, "compacted");
    if (hi > this.lastIndex() + 1) throw new Error(`entries[${lo},${hi}) beyond the last index ${this.lastIndex()}`);
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  term(i: number): number {
    const offset = this.ents[0].index;
    if (i < offset) throw new RaftError(`term(${i}): compacted up to ${offset}`, "compacted");
    if (i - offset >= this.ents.length) throw new RaftError(`term(${i}): beyond the last index`, "unavailable");
    return this.ents[i - offset].term;
  }

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** The persisted hard state (what initialState returns). */
  getHardState(): HardState {
    return { ...this.hardState };
  }

  setHardState(state: HardState): void {
    this.hardState = { ...state };
  }

  /** The configuration restored on restart; the driver updates it as it applies conf changes. */
  setConfState(cs: ConfState): void {
    this.confState = cloneConf(cs);
  }

  /** Appends entries, truncating any existing entries at or after entries[0].index; drops compacted ones. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[entries.length - 1].index;
    if (last < first) return;
    // Entries already covered by the snapshot are committed and identical: skip them.
    const fresh = entries[0].index < first ? entries.slice(first - entries[0].index) : entries;
    const at = fresh[0].index - this.ents[0].index;
    if (at > this.ents.length) {
      throw new Error(`append at ${fresh[0].index} leaves a gap after the last index ${this.lastIndex()}`);
    }
    this.ents = this.ents.slice(0, at).concat(fresh);
  }

  /** Replaces the log with a snapshot (a follower catching up from the leader's snapshot). */
  applySnapshot(snapshot: Snapshot): void {
    if (snapshot.meta.index <= this.snap.meta.index) {
      throw new RaftError(`snapshot ${snapshot.meta.index} is not newer than ${this.snap.meta.index}`, "snapshot-out-of-date");
    }
    this.snap = snapshot;
    this.confState = cloneConf(snapshot.meta.confState);
    this.ents = [dummy(snapshot.meta.index, snapshot.meta.term)];
  }

  /** Records a snapshot of the state machine as of index i (the application took it); does not compact. */
  createSnapshot(i: number, data: Uint8Array, confState: ConfState = this.confState): Snapshot {
    if (i <= this.snap.meta.index) {
      throw new RaftError(`snapshot at ${i} is not newer than ${this.snap.meta.index}`, "snapshot-out-of-date");
    }
    if (i > this.lastIndex()) throw new Error(`snapshot at ${i} is beyond the last index ${this.lastIndex()}`);
    this.snap = { meta: { index: i, term: this.term(i), confState: cloneConf(confState) }, data };
    return this.snap;
  }

  /** Discards entries up to and including index; entry `index` remains as the dummy (its term stays known). */
  compact(index: number): void {
    const offset = this.ents[0].index;
    if (index <= offset) throw new RaftError(`compact(${index}): already compacted up to ${offset}`, "compacted");
    if (index > this.lastIndex()) throw new Error(`compact(${index}) beyond the last index ${this.lastIndex()}`);
    const at = index - offset;
    this.ents = [dummy(index, this.ents[at].term)].concat(this.ents.slice(at + 1));
  }

  async sync(): Promise<void> {}

  async close(): Promise<void> {}
}

function dummy(index: number, term: number): Entry {
  return { index, term, type: "normal", data: EMPTY };
}

function cloneConf(cs: ConfState): ConfState {
  return { voters: [...cs.voters], learners: [...cs.learners] };
}
