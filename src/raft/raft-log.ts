// The Raft log as the core sees it (etcd-io/raft's log.go): the persisted part read through a LogReader, followed
// by the unstable part not yet persisted, plus the commit and apply cursors.
//
// Invariants: applied ≤ applying ≤ committed ≤ lastIndex; committed entries are never truncated (Raft §5.3,
// Log Matching and Leader Completeness); entries handed out to apply are persisted locally (index < unstable.offset).
import { Unstable } from "./log-unstable.js";
import type { LogReader } from "./storage.js";
import { RaftError, type Entry, type Snapshot } from "./types.js";

/** Bytes of an entry counted against size limits: its payload. */
export function entrySize(e: Entry): number {
  return e.data.byteLength;
}

export function payloadSize(ents: readonly Entry[]): number {
  let n = 0;
  for (const e of ents) n += entrySize(e);
  return n;
}

/** The longest prefix of ents within maxBytes, but always at least one entry so that progress is made. */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  let size = 0;
  for (let i = 0; i < ents.length; i++) {
    size += entrySize(ents[i]);
    if (i > 0 && size > maxBytes) return ents.slice(0, i);
  }
  return ents;
}

export class RaftLog {
  readonly unstable: Unstable;
  committed: number;
  /** The highest index the application has applied (reported through advance). */
  applied: number;
  /** The highest index handed out to the application (in a Ready) but possibly not yet applied. */
  applying: number;

  constructor(
    readonly storage: LogReader,
    readonly maxApplyingBytes: number,
  ) {
    const first = storage.firstIndex();
    this.unstable = new Unstable(storage.lastIndex() + 1);
    // Everything up to the snapshot is committed and applied by definition.
    this.committed = first - 1;
    this.applied = first - 1;
    this.applying = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** The term of entry i; 0 beyond the last index; throws RaftError "compacted" below the first index - 1. */
  term(i: number): number {
    const fromUnstable = this.unstable.maybeTerm(i);
    if (fromUnstable !== undefined) return fromUnstable;
    if (i < this.firstIndex() - 1) throw new RaftError(`term(${i}): compacted`, "compacted");
    if (i > this.lastIndex()) return 0;
    return this.storage.term(i);
  }

  /** term(i), or 0 when it is unknown (compacted). */
  termOrZero(i: number): number {
    try {
      return this.term(i);
    } catch (err) {
      if (err instanceof RaftError) return 0;
      throw err;
    }
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  matchTerm(i: number, t: number): boolean {
    return this.termOrZero(i) === t;
  }

  /** Raft §5.4.1: a log is at least as up to date if its last term is higher, or equal with an index as long. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** The index of the first entry that is new or conflicts (same index, other term); 0 if all already match. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast back-up (etcd): the largest index ≤ index whose term is ≤ term, with that term. Everything above it
   * cannot match a log whose entry at `index` has `term`. A compacted or unknown term stops the search there.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (; index > 0; index--) {
      let ours: number;
      try {
        ours = this.term(index);
      } catch (err) {
        if (err instanceof RaftError) return { index, term: 0 };
        throw err;
      }
      if (ours <= term) return { index, term: ours };
    }
    return { index: 0, term: 0 };
  }

  /**
   * The follower side of AppendEntries (Raft §5.3): if our entry at `index` has `logTerm`, delete any conflicting
   * suffix, append the new entries and advance commit. Returns the index of the last new entry, or undefined when
   * the consistency check fails.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new Error(`entry ${conflict} conflicts with committed entry (committed ${this.committed})`);
      }
      this.append(ents.slice(conflict - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    if (after < this.committed) throw new Error(`append after ${after} is below committed ${this.committed}`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) throw new Error(`commit ${index} is beyond the last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Leader commit rule (Raft §5.4.2): only an entry of the current term is committed by counting replicas. */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    if (index > this.committed || index < this.applied) {
      throw new Error(`applied ${index} is outside [applied ${this.applied}, committed ${this.committed}]`);
    }
    this.applied = index;
    this.applying = Math.max(this.applying, index);
  }

  acceptApplying(index: number): void {
    this.applying = Math.max(this.applying, index);
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries.slice();
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** The upper bound (exclusive) of entries that may be applied: committed, and persisted locally. */
  private applyLimit(): number {
    return Math.min(this.committed, this.unstable.offset - 1) + 1;
  }

  hasNextCommittedEntries(): boolean {
    if (this.hasPendingSnapshot()) return false;
    return this.applying + 1 < this.applyLimit();
  }

  /** The next batch of committed, persisted entries not yet handed out, bounded by maxApplyingBytes. */
  nextCommittedEntries(): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    return this.slice(this.applying + 1, this.applyLimit(), this.maxApplyingBytes);
  }

  /** The last index persisted locally (0 while a received snapshot is pending: nothing after it is durable yet). */
  stableLastIndex(): number {
    return this.unstable.snapshot ? 0 : this.unstable.offset - 1;
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Installs a snapshot (the log is replaced up to its index); it is committed by definition. */
  restore(s: Snapshot): void {
    this.committed = s.meta.index;
    this.unstable.restore(s);
  }

  /** Entries from index i to the end, at most maxBytes (at least one). */
  entriesFrom(i: number, maxBytes: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxBytes);
  }

  /** Entries [lo, hi), at most maxBytes; throws RaftError "compacted" when lo is below the first index. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    this.checkBounds(lo, hi);
    if (lo === hi) return [];
    const offset = this.unstable.offset;
    let ents: Entry[] = [];
    if (lo < offset) {
      const stableHi = Math.min(hi, offset);
      ents = this.storage.entries(lo, stableHi, maxBytes);
      // The storage stopped early because of the size limit: do not look further.
      if (ents.length < stableHi - lo) return ents;
    }
    if (hi > offset) {
      ents = ents.concat(this.unstable.slice(Math.max(lo, offset), hi));
    }
    return limitSize(ents, maxBytes);
  }

  private checkBounds(lo: number, hi: number): void {
    if (lo > hi) throw new Error(`invalid slice ${lo} > ${hi}`);
    if (lo < this.firstIndex()) throw new RaftError(`entries from ${lo} are compacted`, "compacted");
    if (hi > this.lastIndex() + 1) throw new Error(`slice[${lo},${hi}) beyond the last index ${this.lastIndex()}`);
  }
}
