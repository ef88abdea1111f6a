// Range semantics of MvccStore: key/rangeEnd forms, limit/more/count, countOnly, keysOnly, sort, filters, and
// reads at past, compacted and future revisions; plus the ordered key set underneath.
import { describe, expect, it } from "vitest";
import { prefixEnd } from "../../../src/store/mvcc/bytes.js";
import { MvccCompactedError } from "../../../src/store/mvcc/errors.js";
import { SortedKeys } from "../../../src/store/mvcc/sorted-keys.js";
import { MvccError } from "../../../src/store/mvcc/types.js";
import { b, caught, END, keysOf, prng, storeWith, str } from "./helpers.js";

const abc = () => storeWith(["a", "1"], ["ab", "2"], ["abc", "3"], ["b", "4"], ["c", "5"]);

describe("MvccStore.range", () => {
  it("reports revision 1 and nothing when empty", () => {
    const s = storeWith();
    expect(s.revision).toBe(1);
    expect(s.range({ key: b("a") })).toEqual({ header: { revision: 1 }, kvs: [], more: false, count: 0 });
  });

  it("reads a single key with its revisions", () => {
    const r = abc().range({ key: b("ab") });
    expect(r.count).toBe(1);
    expect(r.kvs[0]).toEqual({ key: b("ab"), value: b("2"), createRevision: 3, modRevision: 3, version: 1, lease: 0 });
    expect(r.header.revision).toBe(6);
  });

  it("reads a prefix, from-key, and all keys", () => {
    const s = abc();
    expect(keysOf(s.range({ key: b("ab"), rangeEnd: prefixEnd(b("ab")) }))).toEqual(["ab", "abc"]);
    expect(keysOf(s.range({ key: b("abc"), rangeEnd: END }))).toEqual(["abc", "b", "c"]);
    expect(keysOf(s.range({ key: END, rangeEnd: END }))).toEqual(["a", "ab", "abc", "b", "c"]);
    expect(keysOf(s.range({ key: b("b"), rangeEnd: b("a") }))).toEqual([]);
  });

  it("orders keys bytewise, not by UTF-16", () => {
    const s = storeWith(["\u00ff", "x"], ["\u0100", "y"], ["z", "z"]);
    s.put({ key: new Uint8Array([0x80]), value: b("raw") });
    const keys = s.range({ key: END, rangeEnd: END }).kvs.map((kv) => [...kv.key]);
    expect(keys).toEqual([[0x7a], [0x80], [0xc3, 0xbf], [0xc4, 0x80]]);
  });

  it("limits with more and the full count", () => {
    const s = abc();
    const r = s.range({ key: b("a"), rangeEnd: END, limit: 2 });
    expect(keysOf(r)).toEqual(["a", "ab"]);
    expect(r.more).toBe(true);
    expect(r.count).toBe(5);
    const all = s.range({ key: b("a"), rangeEnd: END, limit: 5 });
    expect(all.more).toBe(false);
  });

  it("countOnly and keysOnly", () => {
    const s = abc();
    expect(s.range({ key: b("a"), rangeEnd: b("b"), countOnly: true })).toMatchObject({ kvs: [], count: 3, more: false });
    const k = s.range({ key: b("a"), rangeEnd: b("b"), keysOnly: true });
    expect(k.kvs.map((kv) => kv.value.length)).toEqual([0, 0, 0]);
    expect(k.kvs[2].modRevision).toBe(4);
  });

  it("sorts by every target, defaulting a non-key target to ascending as etcd does", () => {
    const s = storeWith(["a", "3"], ["b", "1"], ["c", "2"]);
    s.put({ key: b("b"), value: b("9") });
    const r = (sortOrder: "none" | "ascend" | "descend", sortTarget: "key" | "version" | "create" | "mod" | "value") =>
      keysOf(s.range({ key: b("a"), rangeEnd: END, sortOrder, sortTarget }));
    expect(r("descend", "key")).toEqual(["c", "b", "a"]);
    expect(r("ascend", "key")).toEqual(["a", "b", "c"]);
    expect(r("none", "value")).toEqual(["c", "a", "b"]);
    expect(r("descend", "value")).toEqual(["b", "a", "c"]);
    expect(r("descend", "version")).toEqual(["b", "a", "c"]);
    expect(r("ascend", "mod")).toEqual(["a", "c", "b"]);
    expect(r("descend", "create")).toEqual(["c", "b", "a"]);
    const limited = s.range({ key: b("a"), rangeEnd: END, sortOrder: "descend", sortTarget: "mod", limit: 1 });
    expect(keysOf(limited)).toEqual(["b"]);
    expect(limited.more).toBe(true);
  });

  it("filters by mod and create revision (count, as in etcd, is before the filters)", () => {
    const s = storeWith(["a", "1"], ["b", "2"], ["c", "3"]); // revisions 2, 3, 4
    s.put({ key: b("a"), value: b("again") }); // a: create 2, mod 5
    const q = { key: b("a"), rangeEnd: END };
    expect(keysOf(s.range({ ...q, minModRevision: 4 }))).toEqual(["a", "c"]);
    expect(keysOf(s.range({ ...q, maxModRevision: 3 }))).toEqual(["b"]);
    expect(keysOf(s.range({ ...q, minCreateRevision: 3 }))).toEqual(["b", "c"]);
    expect(keysOf(s.range({ ...q, maxCreateRevision: 2 }))).toEqual(["a"]);
    expect(s.range({ ...q, maxCreateRevision: 2 }).count).toBe(3);
  });

  it("reads at past revisions, and refuses compacted and future ones", () => {
    const s = storeWith(["k", "v1"], ["k", "v2"]); // rev 2, 3
    s.deleteRange({ key: b("k") }); // rev 4
    s.put({ key: b("k"), value: b("v3") }); // rev 5
    const at = (revision: number) => s.range({ key: b("k"), revision }).kvs.map((kv) => [str(kv.value), kv.version, kv.createRevision]);
    expect(at(1)).toEqual([]);
    expect(at(2)).toEqual([["v1", 1, 2]]);
    expect(at(3)).toEqual([["v2", 2, 2]]);
    expect(at(4)).toEqual([]);
    expect(at(5)).toEqual([["v3", 1, 5]]);
    expect((caught(() => at(6)) as MvccError).code).toBe("future-revision");
    s.compact({ revision: 3 });
    expect(at(3)).toEqual([["v2", 2, 2]]);
    const err = caught(() => at(2));
    expect(err).toBeInstanceOf(MvccCompactedError);
    expect((err as MvccCompactedError).code).toBe("compacted");
    expect((err as MvccCompactedError).compactRevision).toBe(3);
  });

  it("rejects an empty key", () => {
    expect((caught(() => storeWith().range({ key: new Uint8Array(0) })) as MvccError).code).toBe("invalid");
  });
});

describe("SortedKeys", () => {
  it("matches a sorted Set under random inserts and deletes", () => {
    const rnd = prng(7);
    const keys = new SortedKeys();
    const ref = new Set<string>();
    for (let i = 0; i < 20000; i++) {
      const k = String.fromCharCode(...Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => 97 + Math.floor(rnd() * 26)));
      if (rnd() < 0.7) {
        expect(keys.insert(k)).toBe(!ref.has(k));
        ref.add(k);
      } else {
        expect(keys.delete(k)).toBe(ref.has(k));
        ref.delete(k);
      }
      expect(keys.size).toBe(ref.size);
    }
    expect(keys.toArray()).toEqual([...ref].sort());
    const seen: string[] = [];
    keys.forEach("m", "p", (k) => {
      seen.push(k);
    });
    expect(seen).toEqual([...ref].sort().filter((k) => k >= "m" && k < "p"));
  });
});
