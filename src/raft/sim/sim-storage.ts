// Simulated durable storage. SimLogStorage keeps two images of one disk: the VIEW (what reads see at once, like a
// page cache) and the DURABLE image (what survives a crash). Writes (append, setHardState, applySnapshot, compact)
// change the view immediately and are queued as operations; sync() replays the queue onto the durable image.
// crash() keeps the durable image plus a random PREFIX of the queued operations (the last kept append may be torn
// to a prefix of its entries), then the view is reset to it: a restarted node reopens from what survived.
//
// LogReader semantics (etcd's MemoryStorage): the log holds entries (snapIndex, lastIndex]; term(snapIndex) is the
// compaction point's term; entries() below firstIndex throws RaftError "compacted"; entries() returns at least one
// entry whatever maxBytes says.
import type { LogStorage, SnapshotStorage } from "../storage.js";
import { type ConfState, type Entry, type HardState, RaftError, type Snapshot } from "../types.js";
import type { Prng } from "./prng.js";

interface Disk {
  hardState: HardState;
  confState: ConfState;
  snapIndex: number;
  snapTerm: number;
  entries: Entry[];
}

type Op =
  | { kind: "append"; entries: Entry[] }
  | { kind: "hard-state"; state: HardState }
  | { kind: "snapshot"; snapshot: Snapshot }
  | { kind: "compact"; index: number };

export class SimLogStorage implements LogStorage {
  private view: Disk = emptyDisk();
  private durable: Disk = emptyDisk();
  private queue: Op[] = [];
  /** Counters for tests and traces. */
  syncs = 0;
  crashes = 0;

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: { ...this.view.hardState }, confState: cloneConf(this.view.confState) };
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const d = this.view;
    if (lo <= d.snapIndex) throw new RaftError(`entries(${lo}): compacted up to ${d.snapIndex}`, "compacted");
    if (hi > lastIndexOf(d) + 1) throw new RaftError(`entries(${lo}, ${hi}): last index is ${lastIndexOf(d)}`, "unavailable");
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = d.entries[i - d.snapIndex - 1];
      bytes += e.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(i: number): number {
    const d = this.view;
    if (i === d.snapIndex) return d.snapTerm;
    if (i < d.snapIndex) throw new RaftError(`term(${i}): compacted up to ${d.snapIndex}`, "compacted");
    if (i > lastIndexOf(d)) throw new RaftError(`term(${i}): last index is ${lastIndexOf(d)}`, "unavailable");
    return d.entries[i - d.snapIndex - 1].term;
  }

  firstIndex(): number {
    return this.view.snapIndex + 1;
  }

  lastIndex(): number {
    return lastIndexOf(this.view);
  }

  snapshot(): Snapshot {
    const d = this.view;
    return { meta: { index: d.snapIndex, term: d.snapTerm, confState: cloneConf(d.confState) }, data: new Uint8Array() };
  }

  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    this.write({ kind: "append", entries: entries.slice() });
  }

  setHardState(state: HardState): void {
    this.write({ kind: "hard-state", state: { ...state } });
  }

  applySnapshot(snapshot: Snapshot): void {
    if (snapshot.meta.index <= this.view.snapIndex) {
      throw new RaftError(`snapshot ${snapshot.meta.index} is not newer than ${this.view.snapIndex}`, "snapshot-out-of-date");
    }
    this.write({ kind: "snapshot", snapshot });
  }

  compact(index: number): void {
    const d = this.view;
    if (index <= d.snapIndex) throw new RaftError(`compact(${index}): already compacted up to ${d.snapIndex}`, "compacted");
    if (index > lastIndexOf(d)) throw new Error(`compact(${index}) beyond the last index ${lastIndexOf(d)}`);
    this.write({ kind: "compact", index });
  }

  async sync(): Promise<void> {
    await Promise.resolve();
    for (const op of this.queue) applyOp(this.durable, op);
    this.queue = [];
    this.syncs++;
  }

  async close(): Promise<void> {}

  /** Unsynced operations queued (0 when everything is durable). */
  unsynced(): number {
    return this.queue.length;
  }

  /** Power loss: keeps the durable image and a random prefix of the unsynced writes (maybe a torn append). */
  crash(random?: Prng): void {
    const keep = random ? random.int(0, this.queue.length) : 0;
    for (const op of this.queue.slice(0, keep)) applyOp(this.durable, op);
    const torn = this.queue[keep];
    if (random && torn?.kind === "append" && random.chance(0.5)) {
      applyOp(this.durable, { kind: "append", entries: torn.entries.slice(0, random.int(0, torn.entries.length - 1)) });
    }
    this.queue = [];
    this.view = cloneDisk(this.durable);
    this.crashes++;
  }

  private write(op: Op): void {
    applyOp(this.view, op);
    this.queue.push(op);
  }
}

/** Snapshots are written to a temporary file, fsynced and renamed: durable when save() resolves. */
export class SimSnapshotStorage implements SnapshotStorage {
  private stored?: Snapshot;
  saves = 0;

  async save(snapshot: Snapshot): Promise<void> {
    await Promise.resolve();
    this.stored = snapshot;
    this.saves++;
  }

  async latest(): Promise<Snapshot | undefined> {
    return this.stored;
  }
}

function applyOp(d: Disk, op: Op): void {
  switch (op.kind) {
    case "append":
      return appendTo(d, op.entries);
    case "hard-state":
      d.hardState = { ...op.state };
      return;
    case "snapshot":
      return installSnapshot(d, op.snapshot);
    case "compact": {
      const drop = op.index - d.snapIndex;
      if (drop <= 0) return;
      d.snapTerm = d.entries[drop - 1].term;
      d.snapIndex = op.index;
      d.entries = d.entries.slice(drop);
    }
  }
}

function appendTo(d: Disk, entries: Entry[]): void {
  if (entries.length === 0) return;
  const first = entries[0].index;
  if (first > lastIndexOf(d) + 1) throw new Error(`append at ${first} leaves a gap after the last index ${lastIndexOf(d)}`);
  // Entries at or below the compaction point are already covered by the snapshot.
  const fresh = entries.filter((e) => e.index > d.snapIndex);
  if (fresh.length === 0) return;
  d.entries = d.entries.slice(0, fresh[0].index - d.snapIndex - 1).concat(fresh);
}

function installSnapshot(d: Disk, s: Snapshot): void {
  const { index, term } = s.meta;
  const matches = index <= lastIndexOf(d) && index > d.snapIndex && d.entries[index - d.snapIndex - 1].term === term;
  d.entries = matches ? d.entries.slice(index - d.snapIndex) : [];
  d.snapIndex = index;
  d.snapTerm = term;
  d.confState = cloneConf(s.meta.confState);
}

function lastIndexOf(d: Disk): number {
  return d.snapIndex + d.entries.length;
}

function emptyDisk(): Disk {
  return { hardState: { term: 0, vote: "", commit: 0 }, confState: { voters: [], learners: [] }, snapIndex: 0, snapTerm: 0, entries: [] };
}

function cloneDisk(d: Disk): Disk {
  return { ...d, hardState: { ...d.hardState }, confState: cloneConf(d.confState), entries: d.entries.slice() };
}

function cloneConf(c: ConfState): ConfState {
  return { voters: c.voters.slice(), learners: c.learners.slice() };
}
