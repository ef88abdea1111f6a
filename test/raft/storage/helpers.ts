// Shared helpers of the storage tests: temp directories, entries with recognisable data, and the WAL's framing
// (read independently of src/raft/wal.ts, so the tests check the documented format, not the code's own view of it).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry } from "../../../src/raft/types.js";

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-raft-storage-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function data(index: number, term: number, size = 40): Uint8Array {
  const s = `entry ${index} term ${term} `;
  return new TextEncoder().encode(s + "#".repeat(Math.max(0, size - s.length)));
}

export function entry(index: number, term: number, size?: number): Entry {
  return { index, term, type: "normal", data: data(index, term, size) };
}

export function range(lo: number, hi: number, term: number, size?: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(entry(i, term, size));
  return out;
}

/** The WAL segment files, oldest first. */
export function segments(dir: string): string[] {
  return readdirSync(join(dir, "wal"))
    .filter((n) => n.endsWith(".wal"))
    .sort()
    .map((n) => join(dir, "wal", n));
}

/** Record boundaries of a segment: [u32 length][u32 crc][u8 type][payload], length counting type + payload. */
export function frames(file: string): { off: number; end: number; type: number }[] {
  const b = readFileSync(file);
  const out: { off: number; end: number; type: number }[] = [];
  for (let off = 0; off + 9 <= b.length; ) {
    const end = off + 8 + b.readUInt32LE(off);
    if (end > b.length) break;
    out.push({ off, end, type: b[off + 8]! });
    off = end;
  }
  return out;
}
