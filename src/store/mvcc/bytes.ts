// Byte-string helpers for the MVCC store. Keys are held internally as "latin1" strings (one char per byte, code
// units 0..255), so JavaScript's `<` on them is exactly the bytewise order etcd's btree uses, and Map lookups are
// cheap. Key ranges follow etcd: [key, rangeEnd), rangeEnd empty = the single key, rangeEnd "\0" = no upper bound.
import type { KeyRange } from "./types.js";
import { MvccError } from "./types.js";

/** A shared empty value: tombstones and keysOnly results carry it (a zero-length array cannot be mutated). */
export const EMPTY = new Uint8Array(0);

export function keyString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

export function keyBytes(key: string): Uint8Array {
  return new Uint8Array(Buffer.from(key, "latin1"));
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** A key range resolved to internal strings. `end` undefined means unbounded; `single` means exactly `start`. */
export interface Bounds {
  start: string;
  end: string | undefined;
  single: boolean;
}

export function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** Resolves a request's range; an empty or non-byte key is invalid (etcd: ErrGRPCEmptyKey). */
export function toBounds(range: KeyRange): Bounds {
  if (!isBytes(range.key) || range.key.length === 0) throw new MvccError("invalid", "key is not provided");
  const start = keyString(range.key);
  const end = range.rangeEnd;
  if (end === undefined || end.length === 0) return { start, end: start, single: true };
  if (!isBytes(end)) throw new MvccError("invalid", "rangeEnd must be bytes");
  if (end.length === 1 && end[0] === 0) return { start, end: undefined, single: false };
  return { start, end: keyString(end), single: false };
}

export function inBounds(b: Bounds, key: string): boolean {
  if (b.single) return key === b.start;
  return key >= b.start && (b.end === undefined || key < b.end);
}

/** etcd's prefix range end: the prefix with its last non-0xff byte incremented; all 0xff → "\0" (to the end). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = new Uint8Array(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}
