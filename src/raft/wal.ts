// The write-ahead log: an append-only sequence of checksummed records in segment files, with group commit.
//
// Files: <dir>/wal/<seq, 16 hex>-<firstIndex, 16 hex>.wal. `seq` counts up from 0 with no gaps (only a prefix may
// be missing, after compaction deleted it); `firstIndex` bounds the segment: every live entry with index >= it is in
// this segment or a later one (it is min(lastIndex + 1, the index of the first entry written) at creation).
//
// Record: [u32 length][u32 crc][u8 type][payload], little endian; length counts type + payload (so >= 1: zeros
// never parse), crc is CRC-32C over type + payload. CRCs are not chained across records, so a bad record followed
// by good ones can be told apart from a torn tail. Integers up to 2^53 are u64 (two u32, low first). Types:
//   1 segment header, first in every segment: magic u32, version u16, seq u64, firstIndex u64, then the state at
//     creation time, so that each segment stands alone once its predecessors are deleted: log start (index u64,
//     term u64) and hard state (term u64, commit u64, vote utf-8 to the end).
//   2 entry: term u64, index u64, type u8 (0 normal, 1 conf-change), data to the end.
//   3 hard state: term u64, commit u64, vote utf-8 to the end.
//   4 log start (after a snapshot is installed or the log compacted): index u64, term u64, reset u8 (1: the log
//     conflicted with the snapshot and was discarded entirely).
// Conflicting entries are not overwritten in place: the new entry is appended and, on replay, an entry at index i
// cuts everything at and after i (as etcd's WAL does). That keeps writes append-only; compaction reclaims space.
//
// Invariants: a segment other than the last is complete and durable (rolling fdatasyncs it before the next one is
// created, and fsyncs the directory). So on open, a bad record in any but the last segment, or a bad record followed
// by a valid one, is corruption (RaftError "corrupt", naming file and offset); a bad tail of the last segment is
// what a crash leaves behind (never acknowledged, since sync had not returned) and is cut and reported. Exception,
// as in etcd: a bad record with a 512-byte sector that is all zeros is a torn write (sectors of an unsynced write
// reach the disk in any order) and is cut together with everything after it.
import { closeSync, fdatasync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync } from "node:fs";
import { readFileSync, readdirSync, unlinkSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { crc32c } from "./crc32c.js";
import { RaftError, type Entry, type HardState } from "./types.js";

export const DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024;
/** Larger records are refused; it also bounds how far a corrupt length field can reach. */
export const MAX_RECORD = 256 * 1024 * 1024;
/** Buffered bytes beyond this are written to the file (not synced) during append, bounding memory. */
const FLUSH_AT = 4 * 1024 * 1024;
const FRAME = 9;
const MAGIC = 0x4c415746; // "FWAL"
const VERSION = 1;
const SECTOR = 512;
const enum Type {
  Segment = 1,
  Entry = 2,
  HardState = 3,
  LogStart = 4,
}

export interface LogStart {
  index: number;
  term: number;
  reset: boolean;
}

export type WalRecord =
  | { type: "entry"; entry: Entry }
  | { type: "hard-state"; state: HardState }
  | { type: "log-start"; start: LogStart };

export interface WalRepair {
  file: string;
  /** Where the file was cut (0: the segment held nothing and was deleted). */
  offset: number;
  droppedBytes: number;
  reason: string;
}

export interface WalOptions {
  segmentSize?: number;
  onRepair?: (info: WalRepair) => void;
}

/** What a new segment's header records: the log as the storage holds it when rolling. */
export interface WalState {
  lastIndex: number;
  start: { index: number; term: number };
  hardState: HardState;
}

interface Segment {
  seq: number;
  firstIndex: number;
  path: string;
}

const hex = (n: number) => n.toString(16).padStart(16, "0");
const corrupt = (msg: string) => new RaftError(`WAL corrupt: ${msg}`, "corrupt");

/** Builds records in a growing buffer; the WAL writes the buffer out in one writeSync per flush. */
class Encoder {
  buf = Buffer.allocUnsafe(64 * 1024);
  len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  begin(type: Type, payload: number): number {
    if (payload + 1 > MAX_RECORD) throw new Error(`WAL record of ${payload} bytes exceeds the ${MAX_RECORD} limit`);
    this.reserve(FRAME + payload);
    const start = this.len;
    this.buf[start + 8] = type;
    this.len += FRAME;
    return start;
  }
  end(start: number): void {
    this.buf.writeUInt32LE(this.len - start - 8, start);
    this.buf.writeUInt32LE(crc32c(this.buf, 0, start + 8, this.len), start + 4);
  }
  u8(v: number): void {
    this.buf[this.len++] = v;
  }
  u16(v: number): void {
    this.len = this.buf.writeUInt16LE(v, this.len);
  }
  u32(v: number): void {
    this.len = this.buf.writeUInt32LE(v, this.len);
  }
  u64(v: number): void {
    this.len = this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len = this.buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), this.len);
  }
  bytes(b: Uint8Array): void {
    this.buf.set(b, this.len);
    this.len += b.length;
  }
}

const u64 = (b: Buffer, at: number) => b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 0x1_0000_0000;

function encodeHardState(enc: Encoder, hs: HardState, vote: Buffer): void {
  enc.u64(hs.term);
  enc.u64(hs.commit);
  enc.bytes(vote);
}

function decodeHardState(b: Buffer, at: number, end: number): HardState {
  return { term: u64(b, at), commit: u64(b, at + 8), vote: b.toString("utf8", at + 16, end) };
}

/** A frame at `off` whose length, type and crc check out, or undefined. */
function frameAt(b: Buffer, off: number): { type: Type; end: number } | undefined {
  if (off + FRAME > b.length) return undefined;
  const length = b.readUInt32LE(off);
  if (length < 1 || length > MAX_RECORD || off + 8 + length > b.length) return undefined;
  const type = b[off + 8]!;
  if (type < Type.Segment || type > Type.LogStart) return undefined;
  if (crc32c(b, 0, off + 8, off + 8 + length) !== b.readUInt32LE(off + 4)) return undefined;
  return { type, end: off + 8 + length };
}

/** A bad record torn by a crash: one of the 512-byte sectors it spans is all zeros. */
function isTorn(b: Buffer, off: number): boolean {
  const length = off + 4 <= b.length ? b.readUInt32LE(off) : 0;
  const end = length >= 1 && length <= MAX_RECORD ? Math.min(b.length, off + 8 + length) : b.length;
  for (let from = off; from < end; from = (Math.floor(from / SECTOR) + 1) * SECTOR) {
    const to = Math.min(end, (Math.floor(from / SECTOR) + 1) * SECTOR);
    if (b.subarray(from, to).every((x) => x === 0)) return true;
  }
  return false;
}

function findValidFrame(b: Buffer, from: number): number {
  for (let p = from; p + FRAME <= b.length; p++) if (frameAt(b, p)) return p;
  return -1;
}

/** The smallest payload (after the type byte) of each record type. */
const MIN_PAYLOAD: Record<Type, number> = { [Type.Segment]: 54, [Type.Entry]: 17, [Type.HardState]: 16, [Type.LogStart]: 17 };

function decodeRecord(b: Buffer, type: Type, at: number, end: number): WalRecord {
  if (end - at < MIN_PAYLOAD[type]) throw new Error(`record of type ${type} too short`);
  switch (type) {
    case Type.Entry: {
      const entryType = b[at + 16];
      if (entryType !== 0 && entryType !== 1) throw new Error(`unknown entry type ${entryType}`);
      const data = new Uint8Array(end - at - 17);
      data.set(b.subarray(at + 17, end));
      return { type: "entry", entry: { term: u64(b, at), index: u64(b, at + 8), type: entryType === 0 ? "normal" : "conf-change", data } };
    }
    case Type.HardState:
      return { type: "hard-state", state: decodeHardState(b, at, end) };
    case Type.LogStart:
      return { type: "log-start", start: { index: u64(b, at), term: u64(b, at + 8), reset: b[at + 16] === 1 } };
    default:
      throw new Error(`unexpected record type ${type}`);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** mkdir -p, then fsyncs the parent of every directory it created, so that their names are durable too. */
export function mkdirDurable(path: string): void {
  const created = mkdirSync(path, { recursive: true });
  for (let d = path; created !== undefined; d = dirname(d)) {
    fsyncDir(dirname(d));
    if (d === created) break;
  }
}

function listSegments(walDir: string): Segment[] {
  const segments: Segment[] = [];
  for (const name of readdirSync(walDir)) {
    const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/.exec(name);
    if (m) segments.push({ seq: parseInt(m[1]!, 16), firstIndex: parseInt(m[2]!, 16), path: join(walDir, name) });
  }
  segments.sort((a, b) => a.seq - b.seq);
  for (let i = 1; i < segments.length; i++) {
    if (segments[i]!.seq !== segments[i - 1]!.seq + 1) throw corrupt(`segment ${hex(segments[i - 1]!.seq + 1)} is missing before ${segments[i]!.path}`);
  }
  return segments;
}

/**
 * Replays one segment into `visit`; returns the length of its valid prefix. A bad record is corruption unless it
 * starts the tail of the last segment (see the header), in which case the caller cuts the file there.
 */
function replaySegment(seg: Segment, isLast: boolean, visit: (r: WalRecord) => void): { validEnd: number; reason?: string } {
  const b = readFileSync(seg.path);
  let off = 0;
  while (off < b.length) {
    const frame = frameAt(b, off);
    if (!frame) return { validEnd: off, reason: badRecord(b, off, seg.path, isLast) };
    const at = off + FRAME;
    try {
      if (off === 0) replayHeader(b, frame.type, at, frame.end, seg, visit);
      else if (frame.type === Type.Segment) throw new Error("a second segment header");
      else visit(decodeRecord(b, frame.type, at, frame.end));
    } catch (e) {
      throw corrupt(`${seg.path} at offset ${off}: ${(e as Error).message}`);
    }
    off = frame.end;
  }
  if (b.length === 0) {
    if (!isLast) throw corrupt(`${seg.path} is empty and not the last segment`);
    return { validEnd: 0, reason: "empty segment" };
  }
  return { validEnd: off };
}

/** Why the bad record at `off` may be cut; throws if it cannot be (corruption, not a crash's torn tail). */
function badRecord(b: Buffer, off: number, path: string, isLast: boolean): string {
  if (!isLast) throw corrupt(`${path}: bad record at offset ${off} in a segment that is not the last`);
  if (isTorn(b, off)) return "torn write (a zeroed sector)";
  const next = findValidFrame(b, off + 1);
  if (next >= 0) throw corrupt(`${path}: bad record at offset ${off}, followed by a valid record at offset ${next}`);
  return off + FRAME > b.length || off + 8 + b.readUInt32LE(off) > b.length ? "incomplete record" : "bad checksum";
}

function replayHeader(b: Buffer, type: Type, at: number, end: number, seg: Segment, visit: (r: WalRecord) => void): void {
  if (type !== Type.Segment) throw new Error("the segment does not start with a header");
  if (end - at < MIN_PAYLOAD[type]) throw new Error("header too short");
  if (b.readUInt32LE(at) !== MAGIC || b.readUInt16LE(at + 4) !== VERSION) throw new Error("bad magic or version");
  if (u64(b, at + 6) !== seg.seq || u64(b, at + 14) !== seg.firstIndex) throw new Error("the header does not match the file name");
  visit({ type: "log-start", start: { index: u64(b, at + 22), term: u64(b, at + 30), reset: false } });
  visit({ type: "hard-state", state: decodeHardState(b, at + 38, end) });
}

/** The write side. Not safe for concurrent use except `sync`, which may overlap appends and other syncs. */
export class Wal {
  private readonly enc = new Encoder();
  private fd: number;
  /** Bytes in the current segment, written or buffered. */
  private size: number;
  private recordsInSegment = 0;
  /** Counts appended records; a sync makes durable everything appended before it began. */
  private appended = 0;
  private durable = 0;
  private inflight = new Set<Promise<void>>();
  private pendingSync?: { target: number; done: Promise<void> };
  /** Fds of rolled segments, closed once no sync is in flight (closing under a running fdatasync is unsafe). */
  private retired: number[] = [];
  private releases: { after: number; index: number }[] = [];
  private failed?: Error;
  private closed = false;

  private constructor(
    private readonly walDir: string,
    private readonly segmentSize: number,
    private readonly segments: Segment[],
    private readonly state: () => WalState,
    fd: number,
    size: number,
  ) {
    this.fd = fd;
    this.size = size;
  }

  /**
   * Replays every segment in order into `visit`, cuts a torn tail, and opens the last segment for appending (a new
   * directory gets segment 0). `state` describes the log for the header of each new segment.
   */
  static open(dir: string, options: WalOptions, visit: (r: WalRecord) => void, state: () => WalState): Wal {
    const walDir = join(dir, "wal");
    mkdirDurable(walDir);
    const segments = listSegments(walDir);
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i]!;
      const { validEnd, reason } = replaySegment(seg, i === segments.length - 1, visit);
      if (reason === undefined) continue;
      repairTail(walDir, seg, validEnd, reason, options.onRepair);
      if (validEnd === 0) segments.pop(); // not even its header was written: it held nothing
    }
    const segmentSize = options.segmentSize ?? DEFAULT_SEGMENT_SIZE;
    const last = segments.at(-1);
    if (last) {
      const fd = openSync(last.path, "r+");
      return new Wal(walDir, segmentSize, segments, state, fd, fstatSync(fd).size);
    }
    const wal = new Wal(walDir, segmentSize, segments, state, -1, 0);
    wal.createSegment(0, state().lastIndex + 1);
    return wal;
  }

  appendEntries(entries: readonly Entry[]): void {
    this.check();
    for (const e of entries) {
      if (this.mustRoll()) this.roll(Math.min(this.state().lastIndex + 1, e.index));
      const at = this.enc.begin(Type.Entry, 17 + e.data.length);
      this.enc.u64(e.term);
      this.enc.u64(e.index);
      this.enc.u8(e.type === "normal" ? 0 : 1);
      this.enc.bytes(e.data);
      this.finish(at);
    }
  }

  appendHardState(hs: HardState): void {
    this.check();
    if (this.mustRoll()) this.roll(this.state().lastIndex + 1);
    const vote = Buffer.from(hs.vote, "utf8");
    const at = this.enc.begin(Type.HardState, 16 + vote.length);
    encodeHardState(this.enc, hs, vote);
    this.finish(at);
  }

  appendLogStart(start: LogStart): void {
    this.check();
    if (this.mustRoll()) this.roll(this.state().lastIndex + 1);
    const at = this.enc.begin(Type.LogStart, 17);
    this.enc.u64(start.index);
    this.enc.u64(start.term);
    this.enc.u8(start.reset ? 1 : 0);
    this.finish(at);
  }

  /**
   * Deletes, once what was appended so far is durable, the segments that hold only entries <= index (the log was
   * compacted to index, and that fact is in a record appended before this call).
   */
  releaseTo(index: number): void {
    this.releases.push({ after: this.appended, index });
  }

  /** Writes buffered records to the file (no sync). */
  flush(): void {
    this.guard(() => {
      let off = 0;
      while (off < this.enc.len) off += writeSync(this.fd, this.enc.buf, off, this.enc.len - off, this.size - this.enc.len + off);
      this.enc.len = 0;
    });
  }

  /** A failed write or sync leaves the file in an unknown state (a partial write; pages the kernel dropped). */
  private guard(io: () => void): void {
    try {
      io();
    } catch (e) {
      this.failed = e as Error;
      throw e;
    }
  }

  /** Makes every record appended before the call durable (write + fdatasync). */
  async sync(): Promise<void> {
    this.check();
    const target = this.appended;
    if (this.durable >= target) return;
    if (this.pendingSync && this.pendingSync.target >= target) return this.pendingSync.done;
    this.flush();
    const done = this.fdatasync(this.fd, target);
    this.pendingSync = { target, done };
    this.inflight.add(done);
    const forget = () => {
      this.inflight.delete(done);
      if (this.inflight.size === 0) this.closeRetired();
    };
    done.then(forget, forget);
    return done;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.failed) await this.sync();
    await Promise.allSettled([...this.inflight]);
    this.closed = true;
    for (const fd of [...this.retired, this.fd]) closeSync(fd);
    this.retired = [];
  }

  private async fdatasync(fd: number, target: number): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
      this.durable = Math.max(this.durable, target);
    } catch (e) {
      // After a failed fsync the kernel may have dropped the dirty pages: nothing written since is trustworthy.
      this.failed = e as Error;
      throw e;
    }
    this.runReleases();
  }

  private finish(at: number): void {
    this.enc.end(at);
    this.size += this.enc.len - at;
    this.appended++;
    this.recordsInSegment++;
    if (this.enc.len >= FLUSH_AT) this.flush();
  }

  private check(): void {
    if (this.failed) throw new RaftError(`WAL unusable after a failed write or sync: ${this.failed.message}`, "stopped");
    if (this.closed) throw new RaftError("WAL is closed", "stopped");
  }

  private mustRoll(): boolean {
    return this.size >= this.segmentSize && this.recordsInSegment > 0;
  }

  private roll(firstIndex: number): void {
    // The finished segment must be complete on disk before its successor exists (see the header).
    this.flush();
    this.guard(() => {
      fdatasyncSync(this.fd);
      this.retired.push(this.fd);
      if (this.inflight.size === 0) this.closeRetired();
      this.createSegment(this.segments.at(-1)!.seq + 1, firstIndex);
    });
  }

  private createSegment(seq: number, firstIndex: number): void {
    const path = join(this.walDir, `${hex(seq)}-${hex(firstIndex)}.wal`);
    this.fd = openSync(path, "wx");
    this.segments.push({ seq, firstIndex, path });
    this.size = 0;
    const { start, hardState } = this.state();
    const vote = Buffer.from(hardState.vote, "utf8");
    const at = this.enc.begin(Type.Segment, 38 + 16 + vote.length);
    this.enc.u32(MAGIC);
    this.enc.u16(VERSION);
    this.enc.u64(seq);
    this.enc.u64(firstIndex);
    this.enc.u64(start.index);
    this.enc.u64(start.term);
    encodeHardState(this.enc, hardState, vote);
    this.enc.end(at);
    this.size = this.enc.len;
    this.recordsInSegment = 0;
    this.flush();
    fsyncDir(this.walDir); // the new name is durable before anything in it is acknowledged
  }

  private closeRetired(): void {
    for (const fd of this.retired) closeSync(fd);
    this.retired = [];
  }

  /** Deletes, oldest first (so a crash leaves a contiguous suffix), segments below a durable compaction point. */
  private runReleases(): void {
    let index = -1;
    while (this.releases.length > 0 && this.releases[0]!.after <= this.durable) index = Math.max(index, this.releases.shift()!.index);
    if (index < 0) return;
    // Segments before k hold no live entry above firstIndex(k) - 1 (see the header), so they go once that is compacted.
    let k = 0;
    for (let i = 1; i < this.segments.length; i++) if (this.segments[i]!.firstIndex - 1 <= index) k = i;
    if (k === 0) return;
    for (const seg of this.segments.splice(0, k)) unlinkSync(seg.path);
    fsyncDir(this.walDir);
  }
}

/** Cuts the last segment at its last good record (or deletes it if not even its header is good), durably. */
function repairTail(walDir: string, seg: Segment, validEnd: number, reason: string, onRepair?: (info: WalRepair) => void): void {
  const fd = openSync(seg.path, "r+");
  let dropped: number;
  try {
    dropped = fstatSync(fd).size - validEnd;
    if (validEnd > 0) {
      ftruncateSync(fd, validEnd);
      fsyncSync(fd);
    }
  } finally {
    closeSync(fd);
  }
  if (validEnd === 0) {
    unlinkSync(seg.path);
    fsyncDir(walDir);
  }
  onRepair?.({ file: seg.path, offset: validEnd, droppedBytes: dropped, reason });
}

