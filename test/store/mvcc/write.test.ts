// Writes: put/delete revisions and versions, generations, and txn (compares, branches, reads of the txn's own
// writes, duplicate-key and too-many-ops refusals, one revision per txn, atomic rejection).
import { describe, expect, it } from "vitest";
import { MvccStore } from "../../../src/store/mvcc/mvcc-store.js";
import type { Compare, CompareResult, CompareTarget, MvccError, RangeResponse, TxnResponse } from "../../../src/store/mvcc/types.js";
import { b, caught, delOp, END, keysOf, putOp, rangeOp, storeWith, str } from "./helpers.js";

const code = (fn: () => unknown) => (caught(fn) as MvccError).code;

describe("put and deleteRange", () => {
  it("advances the revision once per write and tracks create/mod/version", () => {
    const s = new MvccStore();
    expect(s.put({ key: b("k"), value: b("1") }).header.revision).toBe(2);
    const r = s.put({ key: b("k"), value: b("2"), prevKv: true });
    expect(r.header.revision).toBe(3);
    expect(r.prevKv).toMatchObject({ value: b("1"), createRevision: 2, modRevision: 2, version: 1 });
    expect(s.range({ key: b("k") }).kvs[0]).toMatchObject({ createRevision: 2, modRevision: 3, version: 2 });
  });

  it("starts a new generation after a delete", () => {
    const s = storeWith(["k", "1"], ["k", "2"]);
    const d = s.deleteRange({ key: b("k"), prevKv: true });
    expect(d).toMatchObject({ header: { revision: 4 }, deleted: 1 });
    expect(str(d.prevKvs[0].value)).toBe("2");
    s.put({ key: b("k"), value: b("3") });
    expect(s.range({ key: b("k") }).kvs[0]).toMatchObject({ createRevision: 5, modRevision: 5, version: 1 });
  });

  it("does not advance the revision when nothing is deleted", () => {
    const s = storeWith(["a", "1"]);
    expect(s.deleteRange({ key: b("zz") })).toEqual({ header: { revision: 2 }, deleted: 0, prevKvs: [] });
    expect(s.revision).toBe(2);
  });

  it("deletes a range in one revision", () => {
    const s = storeWith(["a", "1"], ["b", "2"], ["c", "3"]);
    expect(s.deleteRange({ key: b("a"), rangeEnd: b("c") })).toMatchObject({ header: { revision: 5 }, deleted: 2 });
    expect(keysOf(s.range({ key: b("a"), rangeEnd: END }))).toEqual(["c"]);
  });

  it("ignoreValue and ignoreLease keep the current ones and need the key", () => {
    const s = new MvccStore();
    const { id } = s.leaseGrant({ id: 0, ttlSeconds: 10 });
    s.put({ key: b("k"), value: b("v"), lease: id });
    s.put({ key: b("k"), value: new Uint8Array(0), ignoreValue: true });
    expect(s.range({ key: b("k") }).kvs[0]).toMatchObject({ value: b("v"), lease: 0, version: 2 });
    s.put({ key: b("k"), value: b("w"), lease: id });
    s.put({ key: b("k"), value: b("x"), ignoreLease: true });
    expect(s.range({ key: b("k") }).kvs[0]).toMatchObject({ value: b("x"), lease: id });
    expect(code(() => s.put({ key: b("nope"), value: new Uint8Array(0), ignoreValue: true }))).toBe("key-not-found");
    expect(code(() => s.put({ key: b("k"), value: b("v"), ignoreValue: true }))).toBe("invalid");
  });

  it("does not keep a reference to the caller's buffers", () => {
    const s = new MvccStore();
    const key = b("k");
    const value = b("v");
    s.put({ key, value });
    key[0] = 0x7a;
    value[0] = 0x7a;
    expect(str(s.range({ key: b("k") }).kvs[0].value)).toBe("v");
  });
});

function cmp(key: string, target: CompareTarget, result: CompareResult, value: number | string, rangeEnd?: Uint8Array): Compare {
  return { key: b(key), rangeEnd, target, result, value: typeof value === "string" ? b(value) : value };
}

describe("txn", () => {
  const base = () => storeWith(["a", "1"], ["b", "2"]); // a: rev 2, b: rev 3; store at 3
  const check = (s: MvccStore, c: Compare) => s.txn({ compare: [c], success: [], failure: [] }).succeeded;

  it("compares every target with every result", () => {
    const s = base();
    expect(check(s, cmp("a", "value", "equal", "1"))).toBe(true);
    expect(check(s, cmp("a", "value", "greater", "0"))).toBe(true);
    expect(check(s, cmp("a", "value", "less", "0"))).toBe(false);
    expect(check(s, cmp("a", "value", "not-equal", "1"))).toBe(false);
    expect(check(s, cmp("a", "version", "equal", 1))).toBe(true);
    expect(check(s, cmp("a", "create", "equal", 2))).toBe(true);
    expect(check(s, cmp("b", "mod", "greater", 2))).toBe(true);
    expect(check(s, cmp("b", "mod", "less", 3))).toBe(false);
    expect(check(s, cmp("a", "lease", "equal", 0))).toBe(true);
  });

  it("compares a missing key as zero values (a value compare on no key fails, as in etcd)", () => {
    const s = base();
    for (const t of ["version", "create", "mod", "lease"] as const) expect(check(s, cmp("zz", t, "equal", 0))).toBe(true);
    expect(check(s, cmp("zz", "version", "greater", 0))).toBe(false);
    expect(check(s, cmp("zz", "value", "equal", ""))).toBe(false);
  });

  it("compares every key in a range", () => {
    const s = base();
    expect(check(s, cmp("a", "version", "equal", 1, END))).toBe(true);
    s.put({ key: b("b"), value: b("x") });
    expect(check(s, cmp("a", "version", "equal", 1, END))).toBe(false);
    expect(check(s, cmp("a", "mod", "greater", 1, END))).toBe(true);
  });

  it("runs success or failure ops in one revision with increasing sub-revisions", () => {
    const s = base();
    const ok = s.txn({ compare: [cmp("a", "value", "equal", "1")], success: [putOp("x", "1"), putOp("y", "2"), delOp("b")], failure: [putOp("f", "1")] });
    expect(ok.succeeded).toBe(true);
    expect(ok.header.revision).toBe(4);
    expect(ok.responses.map((r) => ("put" in r ? r.put.header.revision : "deleteRange" in r ? r.deleteRange.deleted : -1))).toEqual([4, 4, 1]);
    expect(s.revision).toBe(4);
    expect(keysOf(s.range({ key: b("a"), rangeEnd: END }))).toEqual(["a", "x", "y"]);
    const no = s.txn({ compare: [cmp("a", "value", "equal", "2")], success: [putOp("s", "1")], failure: [putOp("f", "1")] });
    expect(no.succeeded).toBe(false);
    expect(keysOf(s.range({ key: b("f") }))).toEqual(["f"]);
    expect(s.revision).toBe(5);
  });

  it("does not advance the revision for a read-only txn", () => {
    const s = base();
    const r = s.txn({ compare: [], success: [rangeOp("a")], failure: [] });
    expect(r.header.revision).toBe(3);
    expect(s.revision).toBe(3);
  });

  it("lets ranges inside the txn see its earlier writes, as etcd does", () => {
    const s = base();
    const r = s.txn({ compare: [], success: [rangeOp("a", END), putOp("c", "3"), delOp("a"), rangeOp("a", END)], failure: [] });
    const ranges = r.responses.filter((x): x is { range: RangeResponse } => "range" in x).map((x) => x.range);
    expect(keysOf(ranges[0])).toEqual(["a", "b"]);
    expect(ranges[0].header.revision).toBe(3);
    expect(keysOf(ranges[1])).toEqual(["b", "c"]);
    expect(ranges[1].header.revision).toBe(4);
    expect(ranges[1].kvs[1].modRevision).toBe(4);
  });

  it("runs nested txns, whose compares see the state before the outer txn (etcd compareToPath)", () => {
    const s = base();
    const r = s.txn({
      compare: [],
      success: [putOp("a", "changed"), { txn: { compare: [cmp("a", "value", "equal", "1")], success: [putOp("n", "yes")], failure: [putOp("n", "no")] } }],
      failure: [],
    });
    const nested = (r.responses[1] as { txn: TxnResponse }).txn;
    expect(nested.succeeded).toBe(true);
    expect(nested.header.revision).toBe(4);
    expect(str(s.range({ key: b("n") }).kvs[0].value)).toBe("yes");
  });

  it("refuses a txn that writes a key twice, and leaves no trace", () => {
    const s = base();
    expect(code(() => s.txn({ compare: [], success: [putOp("x", "1"), putOp("x", "2")], failure: [] }))).toBe("duplicate-key");
    expect(code(() => s.txn({ compare: [], success: [delOp("a", END), putOp("x", "2")], failure: [] }))).toBe("duplicate-key");
    const nested = { txn: { compare: [], success: [putOp("x", "1")], failure: [] } };
    expect(code(() => s.txn({ compare: [], success: [putOp("x", "0"), nested], failure: [] }))).toBe("duplicate-key");
    // The same key in both branches of a nested txn is fine: only one branch runs.
    const both = { txn: { compare: [], success: [putOp("x", "1")], failure: [putOp("x", "2")] } };
    expect(s.txn({ compare: [], success: [both], failure: [] }).succeeded).toBe(true);
    expect(s.txn({ compare: [], success: [delOp("a"), delOp("a", END)], failure: [] }).succeeded).toBe(true);
    expect(s.revision).toBe(5);
  });

  it("limits ops per txn", () => {
    const s = new MvccStore({ maxTxnOps: 3 });
    const ops = ["a", "b", "c", "d"].map((k) => putOp(k, "v"));
    expect(code(() => s.txn({ compare: [], success: ops, failure: [] }))).toBe("too-many-ops");
    expect(code(() => s.txn({ compare: [], success: [{ txn: { compare: [], success: [], failure: ops } }], failure: [] }))).toBe("too-many-ops");
    expect(s.txn({ compare: [], success: ops.slice(0, 3), failure: [] }).header.revision).toBe(2);
    expect(new MvccStore().txn({ compare: [], success: ops, failure: [] }).succeeded).toBe(true);
  });

  it("rejects the whole txn on an unknown lease or a future range, before writing", () => {
    const s = base();
    expect(code(() => s.txn({ compare: [], success: [putOp("x", "1"), putOp("y", "1", 42)], failure: [] }))).toBe("lease-not-found");
    const future = { range: { key: b("a"), revision: 99 } };
    expect(code(() => s.txn({ compare: [], success: [putOp("x", "1"), future], failure: [] }))).toBe("future-revision");
    expect(s.revision).toBe(3);
    expect(s.range({ key: b("x") }).count).toBe(0);
    // An unknown lease in the branch not taken does not matter.
    expect(s.txn({ compare: [], success: [putOp("x", "1")], failure: [putOp("y", "1", 42)] }).succeeded).toBe(true);
  });
});
