// The binary snapshot of an MvccStore: varints and length-prefixed bytes, keys in bytewise order and leases in id
// order, so equal stores encode to identical bytes on every replica. Layout (version 1):
//   "MVCC" 0x01, revision, compactRevision, nextLeaseId,
//   leaseCount, [id, ttlSeconds]*,
//   keyCount, [key, versionCount, [flags(1 = tombstone), mod, sub, (create, version, lease, value if live)]*]*
// The revision log and the leases' key sets are not stored: both are derived from the histories on restore.
import { EMPTY, keyString } from "./bytes.js";
import { KeyHistory } from "./key-index.js";
import { MvccError } from "./types.js";

const MAGIC = [0x4d, 0x56, 0x43, 0x43, 0x01];

export interface SnapshotState {
  revision: number;
  compactRevision: number;
  nextLeaseId: number;
  leases: { id: number; ttlSeconds: number }[];
  histories: KeyHistory[];
}

class Writer {
  private buf = new Uint8Array(4096);
  private len = 0;

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.len++] = b;
  }

  /** Unsigned LEB128 up to 2^53, with arithmetic rather than 32-bit shifts. */
  uint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new MvccError("invalid", `cannot encode ${v}`);
    while (v >= 0x80) {
      this.byte((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.byte(v);
  }

  bytes(b: Uint8Array): void {
    this.uint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

class Reader {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  byte(): number {
    if (this.pos >= this.buf.length) throw new MvccError("invalid", "snapshot is truncated");
    return this.buf[this.pos++];
  }

  uint(): number {
    let v = 0;
    for (let scale = 1; ; scale *= 0x80) {
      const b = this.byte();
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      if (scale > 2 ** 49) throw new MvccError("invalid", "varint too long");
    }
  }

  bytes(): Uint8Array {
    const n = this.uint();
    if (this.pos + n > this.buf.length) throw new MvccError("invalid", "snapshot is truncated");
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  done(): boolean {
    return this.pos === this.buf.length;
  }
}

function writeHistory(w: Writer, h: KeyHistory): void {
  w.bytes(h.bytes);
  w.uint(h.versions.length);
  for (const v of h.versions) {
    w.byte(v.tombstone ? 1 : 0);
    w.uint(v.mod);
    w.uint(v.sub);
    if (v.tombstone) continue;
    w.uint(v.create);
    w.uint(v.version);
    w.uint(v.lease);
    w.bytes(v.value);
  }
}

export function encodeSnapshot(s: SnapshotState): Uint8Array {
  const w = new Writer();
  for (const b of MAGIC) w.byte(b);
  w.uint(s.revision);
  w.uint(s.compactRevision);
  w.uint(s.nextLeaseId);
  w.uint(s.leases.length);
  for (const l of s.leases) {
    w.uint(l.id);
    w.uint(l.ttlSeconds);
  }
  w.uint(s.histories.length);
  for (const h of s.histories) writeHistory(w, h);
  return w.finish();
}

function readHistory(r: Reader): KeyHistory {
  const key = r.bytes();
  const h = new KeyHistory(keyString(key), key);
  const n = r.uint();
  for (let i = 0; i < n; i++) {
    const tombstone = r.byte() === 1;
    const mod = r.uint();
    const sub = r.uint();
    if (tombstone) {
      h.versions.push({ mod, sub, create: 0, version: 0, value: EMPTY, lease: 0, tombstone });
      continue;
    }
    const create = r.uint();
    const version = r.uint();
    const lease = r.uint();
    h.versions.push({ mod, sub, create, version, lease, value: r.bytes(), tombstone });
  }
  return h;
}

export function decodeSnapshot(data: Uint8Array): SnapshotState {
  const r = new Reader(data);
  for (const b of MAGIC) if (r.byte() !== b) throw new MvccError("invalid", "not an MVCC snapshot (bad magic or version)");
  const revision = r.uint();
  const compactRevision = r.uint();
  const nextLeaseId = r.uint();
  const leases: SnapshotState["leases"] = [];
  for (let n = r.uint(); n > 0; n--) leases.push({ id: r.uint(), ttlSeconds: r.uint() });
  const histories: KeyHistory[] = [];
  for (let n = r.uint(); n > 0; n--) histories.push(readHistory(r));
  if (!r.done()) throw new MvccError("invalid", "trailing bytes after snapshot");
  return { revision, compactRevision, nextLeaseId, leases, histories };
}
