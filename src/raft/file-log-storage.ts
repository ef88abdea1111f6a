// The durable LogStorage: the log since the last compaction held in memory (as etcd's MemoryStorage holds it), every
// change written through the write-ahead log (wal.ts), made durable by sync() with one fdatasync per batch.
//
// On disk: <dir>/wal/*.wal (see wal.ts) and, through FileSnapshotStorage, <dir>/snap/*.snap. Recovery replays the
// WAL, then reconciles it with the newest valid snapshot: the state is that snapshot plus the log after it.
//
// Replay rules (the same as the in-memory operations, so replay rebuilds exactly what the process held):
//   entry i: cuts the log at i and appends (a later record at an index wins). If i is beyond lastIndex + 1 or below
//     the log's start, the entries before it are in segments deleted by compaction: the log restarts at i with an
//     unknown start term, which a later log-start record must settle (compaction deletes segments only after such a
//     record is durable), else open fails as corrupt.
//   log start (i, term, reset): reset, or i beyond the log, discards the log (it starts at i + 1); otherwise entries
//     up to i are dropped and term(i) is remembered. A start older than the log's is stale (a segment header).
//   hard state: the last one wins.
//
// Contract with the driver (etcd's order): a snapshot is saved to the snapshot storage before applySnapshot() or
// compact() refers to it, so the WAL never starts after the newest snapshot (open checks it).
import { NONE, RaftError, type ConfState, type Entry, type HardState, type Snapshot } from "./types.js";
import type { LogStorage } from "./storage.js";
import { FileSnapshotStorage } from "./file-snapshot-storage.js";
import { MAX_RECORD, Wal, type LogStart, type WalOptions, type WalRecord, type WalState } from "./wal.js";

export interface FileLogStorageOptions extends WalOptions {
  /** Where snapshots live (default: a FileSnapshotStorage on the same directory, keeping 2). */
  snapshots?: FileSnapshotStorage;
}

const corrupt = (msg: string) => new RaftError(`log storage corrupt: ${msg}`, "corrupt");

function emptySnapshot(): Snapshot {
  return { meta: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) };
}

export class FileLogStorage implements LogStorage {
  readonly snapshots: FileSnapshotStorage;
  /** Entries first .. first + log.length - 1. */
  private log: Entry[] = [];
  private first = 1;
  /** The term of entry first - 1 (the snapshot's); undefined only while replay has not yet learnt it. */
  private startTerm: number | undefined = 0;
  private hard: HardState = { term: 0, vote: NONE, commit: 0 };
  /** The snapshot installed with applySnapshot or found at open (the snapshot storage may hold a newer one). */
  private installed?: Snapshot;
  private wal!: Wal;

  private constructor(snapshots: FileSnapshotStorage) {
    this.snapshots = snapshots;
  }

  /** Opens (or creates) the storage in `dir`, replaying the WAL and reconciling it with the newest snapshot. */
  static async open(dir: string, options: FileLogStorageOptions = {}): Promise<FileLogStorage> {
    const snapshots = options.snapshots ?? new FileSnapshotStorage(dir);
    const snapshot = await snapshots.latest();
    const s = new FileLogStorage(snapshots);
    s.wal = Wal.open(
      dir,
      options,
      (r) => s.replay(r),
      () => s.walState(),
    );
    try {
      await s.reconcile(dir, snapshot);
    } catch (e) {
      await s.wal.close().catch(() => undefined);
      throw e;
    }
    return s;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    const cs = this.snapshot().meta.confState;
    return { hardState: { ...this.hard }, confState: { voters: [...cs.voters], learners: [...cs.learners] } };
  }

  /** Entries [lo, hi), as many as fit in maxBytes of data but at least one. */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo < this.first) throw new RaftError(`entries from ${lo}: the log is compacted up to ${this.first - 1}`, "compacted");
    if (hi > this.lastIndex() + 1) throw new RaftError(`entries up to ${hi - 1}: the last index is ${this.lastIndex()}`, "unavailable");
    if (lo >= hi) return [];
    const out = [this.log[lo - this.first]!];
    let size = out[0]!.data.length;
    for (let i = lo + 1; i < hi; i++) {
      const e = this.log[i - this.first]!;
      size += e.data.length;
      if (size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(i: number): number {
    if (i === this.first - 1) return this.startTerm ?? 0;
    if (i < this.first) throw new RaftError(`term(${i}): the log is compacted up to ${this.first - 1}`, "compacted");
    if (i > this.lastIndex()) throw new RaftError(`term(${i}): the last index is ${this.lastIndex()}`, "unavailable");
    return this.log[i - this.first]!.term;
  }

  firstIndex(): number {
    return this.first;
  }

  lastIndex(): number {
    return this.first + this.log.length - 1;
  }

  /** The newest snapshot: installed here, or saved to (or loaded from) the snapshot storage. */
  snapshot(): Snapshot {
    const a = this.installed;
    const b = this.snapshots.current();
    return (a && b ? (b.meta.index > a.meta.index ? b : a) : (a ?? b)) ?? emptySnapshot();
  }

  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const lo = entries[0]!.index;
    entries.forEach((e, i) => {
      if (e.index !== lo + i) throw new Error(`append: entries are not contiguous (${e.index} after ${lo + i - 1})`);
      if (e.data.length + 18 > MAX_RECORD) throw new Error(`append: entry ${e.index} is too large (${e.data.length} bytes)`);
    });
    // Entries already compacted are committed and therefore unchanged: skip them (as etcd's MemoryStorage does).
    const batch = lo < this.first ? entries.slice(this.first - lo) : entries;
    if (batch.length === 0) return;
    if (batch[0]!.index > this.lastIndex() + 1) throw new Error(`append: entry ${batch[0]!.index} would leave a gap after ${this.lastIndex()}`);
    this.log.length = batch[0]!.index - this.first;
    for (const e of batch) this.log.push(e);
    this.wal.appendEntries(batch);
  }

  setHardState(state: HardState): void {
    const h = this.hard;
    if (h.term === state.term && h.vote === state.vote && h.commit === state.commit) return;
    this.hard = { term: state.term, vote: state.vote, commit: state.commit };
    this.wal.appendHardState(this.hard);
  }

  applySnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.meta;
    if (index < this.first - 1) {
      throw new RaftError(`snapshot at ${index} is older than the log's start at ${this.first - 1}`, "snapshot-out-of-date");
    }
    const reset = this.install(index, term);
    this.installed = snapshot;
    this.wal.appendLogStart({ index, term, reset });
    this.wal.releaseTo(index);
  }

  compact(index: number): void {
    if (index < this.first) return;
    if (index > this.lastIndex()) throw new Error(`compact(${index}): beyond the last index ${this.lastIndex()}`);
    const snap = this.snapshot().meta.index;
    if (index > snap) throw new Error(`compact(${index}): beyond the newest snapshot (${snap}); save a snapshot first`);
    const term = this.term(index);
    this.dropThrough(index, term);
    this.wal.appendLogStart({ index, term, reset: false });
    this.wal.releaseTo(index);
  }

  sync(): Promise<void> {
    return this.wal.sync();
  }

  close(): Promise<void> {
    return this.wal.close();
  }

  /** Moves the log's start to `index`; keeps the entries after it if the log agrees with `term` there. */
  private install(index: number, term: number): boolean {
    const agrees =
      index === this.first - 1 ? this.startTerm === term : index >= this.first && index <= this.lastIndex() && this.term(index) === term;
    if (agrees) this.dropThrough(index, term);
    else this.resetTo(index, term);
    return !agrees;
  }

  private dropThrough(index: number, term: number): void {
    this.log.splice(0, index - this.first + 1);
    this.first = index + 1;
    this.startTerm = term;
  }

  private resetTo(index: number, term: number): void {
    this.log = [];
    this.first = index + 1;
    this.startTerm = term;
  }

  private walState(): WalState {
    return { lastIndex: this.lastIndex(), start: { index: this.first - 1, term: this.startTerm ?? 0 }, hardState: this.hard };
  }

  private replay(r: WalRecord): void {
    if (r.type === "hard-state") this.hard = r.state;
    else if (r.type === "entry") this.replayEntry(r.entry);
    else this.replayStart(r.start);
  }

  private replayEntry(e: Entry): void {
    if (e.index < this.first || e.index > this.lastIndex() + 1) {
      this.log = [e];
      this.first = e.index;
      this.startTerm = undefined;
      return;
    }
    this.log.length = e.index - this.first;
    this.log.push(e);
  }

  private replayStart({ index, term, reset }: LogStart): void {
    if (reset || index > this.lastIndex()) return this.resetTo(index, term);
    if (index < this.first - 1) return;
    if (index >= this.first && this.term(index) !== term) {
      throw new Error(`log start at ${index} (term ${term}) contradicts the entry there (term ${this.term(index)})`);
    }
    this.dropThrough(index, term);
  }

  /** After replay: the WAL must know where the log starts, and a newer snapshot moves the start up to it. */
  private async reconcile(dir: string, snapshot: Snapshot | undefined): Promise<void> {
    if (this.startTerm === undefined) {
      throw corrupt(`the WAL in ${dir} does not say where the log starts (before index ${this.first}): segments are missing`);
    }
    const start = this.first - 1;
    const snap = snapshot?.meta.index ?? 0;
    if (start > snap) {
      throw corrupt(`the log in ${dir} is compacted up to ${start} but the newest valid snapshot is at ${snap}: the state before it is lost`);
    }
    this.installed = snapshot;
    // A snapshot holds only committed entries.
    if (this.hard.commit < snap) this.hard = { ...this.hard, commit: snap };
    if (!snapshot || snap === start) return;
    // Saved but not yet recorded in the WAL (a crash between the two): record it now, durably.
    const { index, term } = snapshot.meta;
    const reset = this.install(index, term);
    this.wal.appendLogStart({ index, term, reset });
    await this.wal.sync();
  }
}
