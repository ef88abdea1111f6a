// Compaction (old revisions fail, current state intact, watches from compacted revisions fail with the compact
// revision) and leases (attach, move between leases, revoke in one revision, unknown leases, deterministic ids).
import { describe, expect, it } from "vitest";
import { MvccCompactedError } from "../../../src/store/mvcc/errors.js";
import { MvccStore } from "../../../src/store/mvcc/mvcc-store.js";
import type { MvccError, WatchEvent } from "../../../src/store/mvcc/types.js";
import { b, caught, END, keysOf, storeWith, str } from "./helpers.js";

const code = (fn: () => unknown) => (caught(fn) as MvccError).code;

describe("compaction", () => {
  it("forgets old revisions and keeps the current state", () => {
    const s = storeWith(["a", "1"], ["a", "2"], ["b", "1"], ["gone", "x"]); // revs 2..5
    s.deleteRange({ key: b("gone") }); // 6
    s.put({ key: b("a"), value: b("3") }); // 7
    expect(s.compact({ revision: 6 }).header.revision).toBe(7);
    expect(s.compactRevision).toBe(6);
    expect(s.revision).toBe(7);
    expect(code(() => s.range({ key: b("a"), revision: 5 }))).toBe("compacted");
    expect(s.range({ key: b("a"), rangeEnd: END, revision: 6 }).kvs.map((kv) => str(kv.value))).toEqual(["2", "1"]);
    expect(s.range({ key: b("a"), rangeEnd: END }).kvs.map((kv) => [str(kv.key), str(kv.value), kv.version])).toEqual([
      ["a", "3", 3],
      ["b", "1", 1],
    ]);
    // The deleted key's tombstone was at or before the compaction point: it is gone from the index.
    expect(s.indexSize).toBe(2);
  });

  it("refuses a compacted or future compaction revision", () => {
    const s = storeWith(["a", "1"], ["a", "2"]);
    s.compact({ revision: 2 });
    expect(code(() => s.compact({ revision: 2 }))).toBe("compacted");
    expect(code(() => s.compact({ revision: 1 }))).toBe("compacted");
    expect(code(() => s.compact({ revision: 9 }))).toBe("future-revision");
    expect(s.compact({ revision: 3 }).header.revision).toBe(3);
  });

  it("fails a watch from a compacted revision with the compact revision", () => {
    const s = storeWith(["a", "1"], ["a", "2"], ["a", "3"]);
    s.compact({ revision: 3 });
    const err = caught(() => s.watch({ key: b("a") }, 3, {}, () => {}));
    expect(err).toBeInstanceOf(MvccCompactedError);
    expect((err as MvccCompactedError).compactRevision).toBe(3);
    const got: number[] = [];
    s.watch({ key: b("a") }, 4, {}, (_e, rev) => got.push(rev));
    expect(got).toEqual([4]);
  });
});

describe("leases", () => {
  it("grants deterministic ids and refuses existing ones", () => {
    const s = new MvccStore();
    expect(s.leaseGrant({ id: 0, ttlSeconds: 5 }).id).toBe(1);
    expect(s.leaseGrant({ id: 2, ttlSeconds: 5 }).id).toBe(2);
    expect(s.leaseGrant({ id: 0, ttlSeconds: 7 })).toEqual({ header: { revision: 1 }, id: 3, ttlSeconds: 7 });
    expect(code(() => s.leaseGrant({ id: 2, ttlSeconds: 5 }))).toBe("lease-exists");
    expect(s.revision).toBe(1);
  });

  it("attaches keys and moves a key between leases", () => {
    const s = new MvccStore();
    s.leaseGrant({ id: 10, ttlSeconds: 5 });
    s.leaseGrant({ id: 20, ttlSeconds: 5 });
    s.put({ key: b("k"), value: b("v"), lease: 10 });
    s.put({ key: b("j"), value: b("v"), lease: 10 });
    expect(s.lease(10)?.keys.map(str)).toEqual(["j", "k"]);
    s.put({ key: b("k"), value: b("v"), lease: 20 });
    expect(s.lease(10)?.keys.map(str)).toEqual(["j"]);
    expect(s.lease(20)?.keys.map(str)).toEqual(["k"]);
    s.put({ key: b("j"), value: b("v") });
    s.deleteRange({ key: b("k") });
    expect(s.leases()).toEqual([
      { id: 10, ttlSeconds: 5, keys: [] },
      { id: 20, ttlSeconds: 5, keys: [] },
    ]);
  });

  it("refuses an unknown lease", () => {
    const s = new MvccStore();
    expect(code(() => s.put({ key: b("k"), value: b("v"), lease: 99 }))).toBe("lease-not-found");
    expect(code(() => s.leaseRevoke({ id: 99 }))).toBe("lease-not-found");
    expect(s.revision).toBe(1);
  });

  it("revokes: deletes every attached key in one revision, then the lease", () => {
    const s = new MvccStore();
    const { id } = s.leaseGrant({ id: 0, ttlSeconds: 5 });
    s.put({ key: b("a"), value: b("1"), lease: id });
    s.put({ key: b("b"), value: b("2"), lease: id });
    s.put({ key: b("c"), value: b("3") });
    const seen: [string[], number][] = [];
    s.watch({ key: b("a"), rangeEnd: END }, 0, {}, (events: WatchEvent[], rev) => seen.push([events.map((e) => `${e.type}:${str(e.kv.key)}`), rev]));
    expect(s.leaseRevoke({ id }).header.revision).toBe(5);
    expect(seen).toEqual([[["delete:a", "delete:b"], 5]]);
    expect(keysOf(s.range({ key: b("a"), rangeEnd: END }))).toEqual(["c"]);
    expect(s.lease(id)).toBeUndefined();
    // A lease without keys goes without a revision.
    s.leaseGrant({ id: 7, ttlSeconds: 1 });
    expect(s.leaseRevoke({ id: 7 }).header.revision).toBe(5);
  });
});
