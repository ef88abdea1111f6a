import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileSnapshotStorage, type SnapshotCorruption } from "../../../src/raft/storage-files.js";
import type { Snapshot } from "../../../src/raft/types.js";
import { tempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

function snap(index: number, term: number, size = 1000): Snapshot {
  const data = new Uint8Array(size).map((_, i) => (i * 7 + index) & 0xff);
  return { meta: { index, term, confState: { voters: ["a", "b"], learners: [] } }, data };
}

const files = () => readdirSync(join(dir, "snap")).sort();

describe("FileSnapshotStorage", () => {
  it("has no snapshot at first", async () => {
    const s = new FileSnapshotStorage(dir);
    expect(await s.latest()).toBeUndefined();
    expect(s.current()).toBeUndefined();
  });

  it("saves durably; latest is the newest, also for a new instance; keeps the last two", async () => {
    const s = new FileSnapshotStorage(dir);
    await s.save(snap(10, 1));
    await s.save(snap(20, 2, 100_000));
    expect(s.current()).toEqual(snap(20, 2, 100_000));
    expect(await new FileSnapshotStorage(dir).latest()).toEqual(snap(20, 2, 100_000));
    await s.save(snap(30, 2, 0));
    expect(files()).toEqual(["0000000000000002-0000000000000014.snap", "0000000000000002-000000000000001e.snap"]);
    expect(await new FileSnapshotStorage(dir).latest()).toEqual(snap(30, 2, 0));
  });

  it("falls back to the older snapshot when the newest is corrupt, and reports it", async () => {
    const s = new FileSnapshotStorage(dir);
    await s.save(snap(10, 1));
    await s.save(snap(20, 2));
    const newest = join(dir, "snap", files().at(-1)!);
    const b = readFileSync(newest);
    b[b.length - 100] ^= 0x01;
    writeFileSync(newest, b);
    const reports: SnapshotCorruption[] = [];
    const fresh = new FileSnapshotStorage(dir, { onCorrupt: (r) => reports.push(r) });
    expect(await fresh.latest()).toEqual(snap(10, 1));
    expect(reports).toEqual([{ file: newest, reason: "checksum mismatch" }]);
    // Set aside, so it is reported once and the next save keeps two good ones.
    expect(files()).toContain("0000000000000002-0000000000000014.snap.broken");
    expect(await fresh.latest()).toEqual(snap(10, 1));
    expect(reports).toHaveLength(1);
  });

  it("rejects truncated files and files whose name does not match their content", async () => {
    const s = new FileSnapshotStorage(dir);
    await s.save(snap(10, 1));
    await s.save(snap(20, 2));
    await s.save(snap(30, 3));
    const [older, newest] = files().map((f) => join(dir, "snap", f));
    writeFileSync(newest!, readFileSync(newest!).subarray(0, 500));
    const impostor = join(dir, "snap", "0000000000000004-0000000000000028.snap");
    writeFileSync(impostor, readFileSync(older!));
    const reports: SnapshotCorruption[] = [];
    expect(await new FileSnapshotStorage(dir, { onCorrupt: (r) => reports.push(r) }).latest()).toEqual(snap(20, 2));
    expect(reports.map((r) => [r.file, r.reason])).toEqual([
      [impostor, "meta (term 2, index 20) does not match the file name"],
      [newest, "checksum mismatch"],
    ]);
  });
});
