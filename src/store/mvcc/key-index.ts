// Per-key history and the ordered index of keys, mirroring etcd's keyIndex and treeIndex. etcd's keyIndex holds
// generations of revisions, each ended by a tombstone; we keep the same information flattened: one revision-ordered
// list of versions per key in which a tombstone closes a generation (the next put starts a new one, version 1).
// The versions carry their values too (etcd keeps those in the backend keyed by revision).
//
// Invariants: a history's versions are strictly increasing in (mod, sub); a tombstone is never first and never
// follows another tombstone; only `latest()` of each key may be referenced by a lease. A key stays in the index
// while it has any version, tombstones included, until compaction removes it (as etcd's treeIndex does).
import type { Bounds } from "./bytes.js";
import { EMPTY } from "./bytes.js";
import { SortedKeys } from "./sorted-keys.js";
import type { KeyValue } from "./types.js";

export interface Version {
  /** Main revision of the write. */
  mod: number;
  /** Position of the write within its revision (etcd's sub revision). */
  sub: number;
  create: number;
  version: number;
  value: Uint8Array;
  lease: number;
  tombstone: boolean;
}

export class KeyHistory {
  readonly versions: Version[] = [];

  constructor(
    readonly key: string,
    readonly bytes: Uint8Array,
  ) {}

  /** The live version now, undefined if the key is deleted. */
  latest(): Version | undefined {
    const v = this.versions[this.versions.length - 1];
    return v !== undefined && !v.tombstone ? v : undefined;
  }

  /** The live version as of revision rev, undefined if absent then. */
  at(rev: number): Version | undefined {
    const vs = this.versions;
    let hi = vs.length - 1;
    if (hi < 0) return undefined;
    if (vs[hi].mod > rev) {
      let lo = 0;
      // Find the last version with mod <= rev.
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (vs[mid].mod <= rev) lo = mid;
        else hi = mid - 1;
      }
      if (vs[lo].mod > rev) return undefined;
      hi = lo;
    }
    return vs[hi].tombstone ? undefined : vs[hi];
  }

  /**
   * Forgets versions superseded at revision `at` (etcd keyIndex.compact): keeps the latest version <= at if it is
   * live, drops it too if it is a tombstone, keeps everything newer. Returns true when nothing remains.
   */
  compact(at: number): boolean {
    const vs = this.versions;
    let last = -1;
    for (let i = 0; i < vs.length && vs[i].mod <= at; i++) last = i;
    if (last >= 0) vs.splice(0, vs[last].tombstone ? last + 1 : last);
    return vs.length === 0;
  }

  toKeyValue(v: Version, keysOnly = false): KeyValue {
    if (v.tombstone) {
      // etcd's delete event carries only the key and the delete's revision.
      return { key: this.bytes, value: EMPTY, createRevision: 0, modRevision: v.mod, version: 0, lease: 0 };
    }
    return {
      key: this.bytes,
      value: keysOnly ? EMPTY : v.value,
      createRevision: v.create,
      modRevision: v.mod,
      version: v.version,
      lease: v.lease,
    };
  }
}

export class KeyIndex {
  private readonly order = new SortedKeys();
  private readonly map = new Map<string, KeyHistory>();

  get size(): number {
    return this.map.size;
  }

  get(key: string): KeyHistory | undefined {
    return this.map.get(key);
  }

  getOrCreate(key: string, bytes: Uint8Array): KeyHistory {
    let h = this.map.get(key);
    if (h === undefined) {
      // Copy: the caller's buffer may be reused or mutated after the request.
      h = new KeyHistory(key, new Uint8Array(bytes));
      this.add(h);
    }
    return h;
  }

  /** Adds a history for a key not yet indexed (restore). */
  add(h: KeyHistory): void {
    this.map.set(h.key, h);
    this.order.insert(h.key);
  }

  remove(key: string): void {
    if (this.map.delete(key)) this.order.delete(key);
  }

  /** Every history in bounds, in key order; fn returning false stops. */
  forEach(b: Bounds, fn: (h: KeyHistory) => boolean | void): void {
    if (b.single) {
      const h = this.map.get(b.start);
      if (h !== undefined) fn(h);
      return;
    }
    if (b.end !== undefined && b.end <= b.start) return;
    this.order.forEach(b.start, b.end, (k) => fn(this.map.get(k) as KeyHistory));
  }

  /** Every history in key order. */
  all(): KeyHistory[] {
    return this.order.toArray().map((k) => this.map.get(k) as KeyHistory);
  }
}
