import { appendFileSync, readdirSync, readFileSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileLogStorage, type FileLogStorageOptions, type WalRepair } from "../../../src/raft/storage-files.js";
import { RaftError, type Entry, type Snapshot } from "../../../src/raft/types.js";
import { entry, frames, range, segments, tempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;
let open: FileLogStorage[];
beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  open = [];
});
afterEach(async () => {
  for (const s of open) await s.close().catch(() => undefined);
  cleanup();
});

async function openStorage(options: FileLogStorageOptions = {}): Promise<FileLogStorage> {
  const s = await FileLogStorage.open(dir, options);
  open.push(s);
  return s;
}

async function reopen(s: FileLogStorage, options: FileLogStorageOptions = {}): Promise<FileLogStorage> {
  await s.close();
  return openStorage(options);
}

function all(s: FileLogStorage): Entry[] {
  return s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity);
}

function snapshotAt(s: FileLogStorage, index: number, term = s.term(index)): Snapshot {
  return { meta: { index, term, confState: { voters: ["a", "b", "c"], learners: ["d"] } }, data: new TextEncoder().encode(`state@${index}`) };
}

/** Flips one byte at `at` in `file`. */
function flip(file: string, at: number): void {
  const b = readFileSync(file);
  b[at] = b[at]! ^ 0x5a;
  writeFileSync(file, b);
}

function expectCorrupt(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<void> {
  return p.then(
    () => expect.fail("expected a RaftError 'corrupt'"),
    (e: unknown) => {
      expect(e).toBeInstanceOf(RaftError);
      expect((e as RaftError).code).toBe("corrupt");
      for (const part of parts) expect((e as Error).message).toMatch(part);
    },
  );
}

describe("FileLogStorage", () => {
  it("starts empty", async () => {
    const s = await openStorage();
    expect([s.firstIndex(), s.lastIndex(), s.term(0)]).toEqual([1, 0, 0]);
    expect(s.initialState()).toEqual({ hardState: { term: 0, vote: "", commit: 0 }, confState: { voters: [], learners: [] } });
    expect(s.snapshot().meta.index).toBe(0);
  });

  it("round-trips entries across several segments, and the hard state", async () => {
    let s = await openStorage({ segmentSize: 300 });
    const written = [...range(1, 30, 1), ...range(31, 60, 2, 200)];
    written.push({ index: 61, term: 2, type: "conf-change", data: new Uint8Array([1, 2, 3]) }, { index: 62, term: 2, type: "normal", data: new Uint8Array(0) });
    for (let i = 0; i < written.length; i += 7) s.append(written.slice(i, i + 7));
    s.setHardState({ term: 2, vote: "node-β", commit: 55 });
    await s.sync();
    expect(segments(dir).length).toBeGreaterThan(10);
    s = await reopen(s, { segmentSize: 300 });
    expect(all(s)).toEqual(written);
    expect([s.firstIndex(), s.lastIndex(), s.term(30), s.term(31), s.term(62)]).toEqual([1, 62, 1, 2, 2]);
    expect(s.initialState().hardState).toEqual({ term: 2, vote: "node-β", commit: 55 });
    // And it keeps appending where it left off.
    s.append([entry(63, 3)]);
    s = await reopen(s);
    expect(s.lastIndex()).toBe(63);
    expect(s.initialState().hardState.commit).toBe(55);
  });

  it("truncates on conflict: a later entry at an index cuts everything after it, also after reopen", async () => {
    for (const segmentSize of [undefined, 200]) {
      let s = await openStorage({ segmentSize });
      s.append(range(1, 10, 1));
      s.append(range(6, 8, 2));
      expect(s.lastIndex()).toBe(8);
      expect(all(s)).toEqual([...range(1, 5, 1), ...range(6, 8, 2)]);
      await s.sync();
      s = await reopen(s, { segmentSize });
      expect(s.lastIndex()).toBe(8);
      expect(all(s)).toEqual([...range(1, 5, 1), ...range(6, 8, 2)]);
      expect(() => s.append([entry(10, 2)])).toThrow(/gap/);
      await s.close();
      cleanup();
      ({ dir, cleanup } = tempDir());
    }
  });

  it("entries() respects maxBytes (at least one entry) and throws 'compacted' below firstIndex", async () => {
    const s = await openStorage();
    s.append(range(1, 10, 1, 100));
    expect(s.entries(2, 8, 250).map((e) => e.index)).toEqual([2, 3]);
    expect(s.entries(2, 8, 10).map((e) => e.index)).toEqual([2]);
    expect(s.entries(2, 8, 0).map((e) => e.index)).toEqual([2]);
    expect(s.entries(2, 8, Infinity).map((e) => e.index)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(s.entries(4, 4, 100)).toEqual([]);
    await s.snapshots.save(snapshotAt(s, 5));
    s.compact(5);
    expect(() => s.entries(5, 8, Infinity)).toThrow(expect.objectContaining({ code: "compacted" }));
    expect(() => s.term(4)).toThrow(expect.objectContaining({ code: "compacted" }));
    expect(() => s.entries(6, 12, Infinity)).toThrow(expect.objectContaining({ code: "unavailable" }));
    expect(s.entries(6, 8, Infinity).map((e) => e.index)).toEqual([6, 7]);
    expect(s.term(5)).toBe(1);
  });

  it("cuts a torn tail (a record truncated mid-way), reports it, and appends after it", async () => {
    const repairs: WalRepair[] = [];
    let s = await openStorage();
    s.setHardState({ term: 1, vote: "a", commit: 3 });
    s.append(range(1, 20, 1));
    await s.sync();
    await s.close();
    const [file] = segments(dir);
    const last = frames(file!).at(-1)!;
    truncateSync(file!, last.off + 13);
    s = await openStorage({ onRepair: (r) => repairs.push(r) });
    expect(repairs).toEqual([{ file, offset: last.off, droppedBytes: 13, reason: "incomplete record" }]);
    expect(s.lastIndex()).toBe(19);
    expect(all(s)).toEqual(range(1, 19, 1));
    expect(readFileSync(file!).length).toBe(last.off);
    s.append(range(20, 21, 2));
    s = await reopen(s, { onRepair: (r) => repairs.push(r) });
    expect(repairs).toHaveLength(1);
    expect(all(s)).toEqual([...range(1, 19, 1), ...range(20, 21, 2)]);
    expect(s.initialState().hardState).toEqual({ term: 1, vote: "a", commit: 3 });
  });

  for (const [name, tail] of [
    ["random garbage", () => randomBytes(777)],
    ["zeros", () => Buffer.alloc(8192)],
    ["a record with a bad checksum", () => badRecord()],
  ] as const) {
    it(`cuts a tail of ${name} after the last record of the last segment`, async () => {
      const repairs: WalRepair[] = [];
      let s = await openStorage({ segmentSize: 1000 });
      s.append(range(1, 40, 1));
      await s.sync();
      await s.close();
      const file = segments(dir).at(-1)!;
      const size = readFileSync(file).length;
      appendFileSync(file, tail());
      s = await openStorage({ segmentSize: 1000, onRepair: (r) => repairs.push(r) });
      expect(repairs).toHaveLength(1);
      expect(repairs[0]).toMatchObject({ file, offset: size });
      expect(all(s)).toEqual(range(1, 40, 1));
      s.append([entry(41, 1)]);
      s = await reopen(s, { segmentSize: 1000, onRepair: (r) => repairs.push(r) });
      expect(repairs).toHaveLength(1);
      expect(s.lastIndex()).toBe(41);
    });
  }

  it("deletes a last segment whose header was torn (a crash while rolling)", async () => {
    const repairs: WalRepair[] = [];
    let s = await openStorage({ segmentSize: 500 });
    s.append(range(1, 30, 1));
    await s.sync();
    await s.close();
    const before = segments(dir);
    const torn = join(dir, "wal", `${(before.length).toString(16).padStart(16, "0")}-${(31).toString(16).padStart(16, "0")}.wal`);
    writeFileSync(torn, Buffer.from([60, 0, 0, 0, 1, 2]));
    s = await openStorage({ segmentSize: 500, onRepair: (r) => repairs.push(r) });
    expect(repairs).toEqual([{ file: torn, offset: 0, droppedBytes: 6, reason: "incomplete record" }]);
    expect(segments(dir)).toEqual(before);
    s.append([entry(31, 1)]);
    s = await reopen(s);
    expect(all(s)).toEqual(range(1, 31, 1));
  });

  it("stops with 'corrupt', naming file and offset, on a bad record in a segment that is not the last", async () => {
    const s = await openStorage({ segmentSize: 400 });
    s.append(range(1, 40, 1));
    await s.close();
    const file = segments(dir)[1]!;
    const victim = frames(file)[1]!;
    flip(file, victim.off + 20);
    await expectCorrupt(FileLogStorage.open(dir, { segmentSize: 400 }), file, `offset ${victim.off}`, /not the last/);
  });

  it("stops with 'corrupt' on a bad record followed by valid ones in the last segment", async () => {
    const s = await openStorage();
    s.append(range(1, 40, 1));
    await s.close();
    const [file] = segments(dir);
    const victim = frames(file!)[5]!;
    const size = readFileSync(file!).length;
    flip(file!, victim.off + 12);
    await expectCorrupt(FileLogStorage.open(dir), file!, `offset ${victim.off}`, `followed by a valid record at offset ${victim.end}`);
    // A corrupt length field is caught the same way.
    flip(file!, victim.off + 12);
    flip(file!, victim.off + 1);
    await expectCorrupt(FileLogStorage.open(dir), file!, `offset ${victim.off}`);
    expect(readFileSync(file!).length).toBe(size); // nothing was cut
  });

  it("stops with 'corrupt' when a segment in the middle is missing", async () => {
    const s = await openStorage({ segmentSize: 300 });
    s.append(range(1, 40, 1));
    await s.close();
    unlinkSync(segments(dir)[2]!);
    await expectCorrupt(FileLogStorage.open(dir, { segmentSize: 300 }), /missing/);
  });
});

const SEEDS = (process.env.RAFT_STORAGE_SEEDS ?? "1,2,3").split(",").map(Number);

describe("FileLogStorage compaction and snapshots", () => {
  it("compaction deletes old segments; reopen restores firstIndex and term(snapshot.index)", async () => {
    let s = await openStorage({ segmentSize: 400 });
    s.append(range(1, 50, 1));
    s.append(range(51, 100, 2));
    s.setHardState({ term: 2, vote: "a", commit: 100 });
    await s.sync();
    const before = segments(dir);
    const snap = snapshotAt(s, 70);
    await s.snapshots.save(snap);
    s.compact(70);
    expect([s.firstIndex(), s.term(70)]).toEqual([71, 2]);
    await s.sync();
    const after = segments(dir);
    expect(after.length).toBeLessThan(before.length - 10);
    expect(after).toEqual(before.slice(before.length - after.length));
    const firstIndexOf = (f: string) => parseInt(f.slice(-20, -4), 16);
    expect(firstIndexOf(after[0]!)).toBeLessThanOrEqual(71);
    expect(firstIndexOf(after[1]!)).toBeGreaterThan(71);
    s = await reopen(s, { segmentSize: 400 });
    expect([s.firstIndex(), s.lastIndex(), s.term(70)]).toEqual([71, 100, 2]);
    expect(all(s)).toEqual(range(71, 100, 2));
    expect(s.snapshot()).toEqual(snap);
    expect(s.initialState()).toEqual({ hardState: { term: 2, vote: "a", commit: 100 }, confState: snap.meta.confState });
    // Compacting beyond the newest snapshot would lose state: refused.
    expect(() => s.compact(80)).toThrow(/snapshot/);
  });

  it("applySnapshot keeps a log that agrees and discards one that conflicts, durably", async () => {
    let s = await openStorage({ segmentSize: 400 });
    s.append(range(1, 30, 1));
    const agreeing = snapshotAt(s, 20);
    await s.snapshots.save(agreeing);
    s.applySnapshot(agreeing);
    expect([s.firstIndex(), s.lastIndex()]).toEqual([21, 30]);
    const conflicting = snapshotAt(s, 25, 3);
    await s.snapshots.save(conflicting);
    s.applySnapshot(conflicting);
    expect([s.firstIndex(), s.lastIndex(), s.term(25)]).toEqual([26, 25, 3]);
    s.append(range(26, 28, 3));
    s = await reopen(s, { segmentSize: 400 });
    expect([s.firstIndex(), s.lastIndex(), s.term(25)]).toEqual([26, 28, 3]);
    expect(all(s)).toEqual(range(26, 28, 3));
    expect(s.snapshot().meta).toEqual(conflicting.meta);
    expect(() => s.applySnapshot(agreeing)).toThrow(expect.objectContaining({ code: "snapshot-out-of-date" }));
  });

  it("recovers from the latest snapshot when the crash came before the WAL recorded it", async () => {
    let s = await openStorage();
    s.append(range(1, 10, 1));
    s.setHardState({ term: 1, vote: "a", commit: 5 });
    await s.snapshots.save({ meta: { index: 50, term: 4, confState: { voters: ["a"], learners: [] } }, data: new Uint8Array([7]) });
    s = await reopen(s);
    expect([s.firstIndex(), s.lastIndex(), s.term(50)]).toEqual([51, 50, 4]);
    expect(s.initialState().hardState.commit).toBe(50);
    s.append(range(51, 52, 4));
    s = await reopen(s);
    expect(all(s)).toEqual(range(51, 52, 4));
  });

  it("stops with 'corrupt' when the log is compacted past the newest valid snapshot", async () => {
    const s = await openStorage();
    s.append(range(1, 10, 1));
    await s.snapshots.save(snapshotAt(s, 8));
    s.compact(8);
    await s.close();
    for (const f of readdirSync(join(dir, "snap"))) unlinkSync(join(dir, "snap", f));
    await expectCorrupt(FileLogStorage.open(dir), /compacted up to 8/, /snapshot/);
  });

  it.each(SEEDS)("replays to exactly the state the process held, through random appends, conflicts, compactions and snapshots (seed %i)", async (initial) => {
    let seed = initial;
    const rnd = (n: number) => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const options = { segmentSize: 700 };
    let s = await openStorage(options);
    let term = 1;
    let reopens = 0;
    for (let step = 0; step < 600; step++) {
      const op = rnd(20);
      // Snapshots hold committed entries only: conflicts never reach back to them.
      const floor = Math.max(s.firstIndex(), s.snapshot().meta.index + 1);
      if (op < 12) {
        const from = Math.max(floor, s.lastIndex() + 1 - (op < 3 ? rnd(8) : 0));
        if (op < 3) term++;
        s.append(range(from, from + rnd(6), term, 10 + rnd(90)));
      } else if (op < 14) {
        s.setHardState({ term, vote: `n${rnd(3)}`, commit: s.lastIndex() });
      } else if (op < 16 && s.lastIndex() >= floor) {
        const at = floor + rnd(s.lastIndex() - floor + 1);
        await s.snapshots.save(snapshotAt(s, at));
        s.compact(at - rnd(3)); // compaction may lag the snapshot, keeping entries for slow followers
      } else if (op === 16 && s.lastIndex() > s.snapshot().meta.index + 1) {
        term++;
        const snap = snapshotAt(s, s.lastIndex() + rnd(3) - 1, term);
        await s.snapshots.save(snap);
        s.applySnapshot(snap);
      } else if (op < 19) {
        await s.sync();
      } else {
        const expected = afterRecovery(s);
        s = await reopen(s, options);
        expect(held(s)).toEqual(expected);
        reopens++;
      }
    }
    expect(reopens).toBeGreaterThan(10);
    expect(segments(dir).length).toBeLessThan(20);
  });
});

function held(s: FileLogStorage) {
  return { first: s.firstIndex(), entries: all(s), start: s.term(s.firstIndex() - 1), state: s.initialState() };
}

/** What a reopen must restore: what `s` holds, moved up to the newest snapshot if compaction lagged behind it. */
function afterRecovery(s: FileLogStorage) {
  const h = held(s);
  const snap = s.snapshot().meta;
  h.state.hardState.commit = Math.max(h.state.hardState.commit, snap.index);
  if (snap.index < h.first) return h;
  return { ...h, first: snap.index + 1, entries: h.entries.filter((e) => e.index > snap.index), start: snap.term };
}

/** A complete frame whose checksum is wrong. */
function badRecord(): Buffer {
  const b = Buffer.alloc(9 + 17 + 5, 0x41);
  b.writeUInt32LE(b.length - 8, 0);
  b.writeUInt32LE(0xdeadbeef, 4);
  b[8] = 2;
  return b;
}
