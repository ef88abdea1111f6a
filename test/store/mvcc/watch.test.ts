// Watch: replay then live delivery, prevKv, range/prefix filtering, one call per revision (a txn's events
// together), cancel, start revisions in the future, consumer failures, and watchers across a restore.
import { describe, expect, it } from "vitest";
import { prefixEnd } from "../../../src/store/mvcc/bytes.js";
import { MvccStore } from "../../../src/store/mvcc/mvcc-store.js";
import type { WatchEvent } from "../../../src/store/mvcc/types.js";
import { b, END, putOp, delOp, storeWith, str } from "./helpers.js";

type Seen = { rev: number; events: string[] }[];

function recorder(): { seen: Seen; fn: (events: WatchEvent[], rev: number) => void } {
  const seen: Seen = [];
  const fn = (events: WatchEvent[], rev: number) =>
    seen.push({ rev, events: events.map((e) => `${e.type} ${str(e.kv.key)}=${str(e.kv.value)}@${e.kv.modRevision}${e.prevKv ? ` prev=${str(e.prevKv.value)}` : ""}`) });
  return { seen, fn };
}

describe("watch", () => {
  it("replays history from the start revision, then delivers live events", () => {
    const s = storeWith(["a", "1"], ["b", "1"], ["a", "2"]); // revs 2, 3, 4
    const { seen, fn } = recorder();
    s.watch({ key: b("a") }, 3, {}, fn);
    expect(seen).toEqual([{ rev: 4, events: ["put a=2@4"] }]);
    s.put({ key: b("a"), value: b("3") });
    s.put({ key: b("b"), value: b("x") });
    s.deleteRange({ key: b("a") });
    expect(seen.map((x) => x.rev)).toEqual([4, 5, 7]);
    expect(seen[2].events).toEqual(["delete a=@7"]);
  });

  it("starts at the next revision for 0, and waits for a future start", () => {
    const s = storeWith(["a", "1"]);
    const now = recorder();
    const later = recorder();
    s.watch({ key: b("a") }, 0, {}, now.fn);
    s.watch({ key: b("a") }, 5, {}, later.fn);
    for (const v of ["2", "3", "4", "5"]) s.put({ key: b("a"), value: b(v) });
    expect(now.seen.map((x) => x.rev)).toEqual([3, 4, 5, 6]);
    expect(later.seen.map((x) => x.rev)).toEqual([5, 6]);
  });

  it("includes prevKv on request, in replay and live", () => {
    const s = storeWith(["a", "1"]);
    const { seen, fn } = recorder();
    s.put({ key: b("a"), value: b("2") });
    s.watch({ key: b("a") }, 2, { prevKv: true }, fn);
    s.deleteRange({ key: b("a") });
    expect(seen.map((x) => x.events[0])).toEqual(["put a=1@2", "put a=2@3 prev=1", "delete a=@4 prev=2"]);
  });

  it("filters by prefix and by from-key range", () => {
    const s = new MvccStore();
    const pre = recorder();
    const from = recorder();
    s.watch({ key: b("app/"), rangeEnd: prefixEnd(b("app/")) }, 0, {}, pre.fn);
    s.watch({ key: b("b"), rangeEnd: END }, 0, {}, from.fn);
    for (const k of ["app/x", "apple", "app/y", "b", "zz", "a"]) s.put({ key: b(k), value: b("v") });
    expect(pre.seen.flatMap((x) => x.events)).toEqual(["put app/x=v@2", "put app/y=v@4"]);
    expect(from.seen.flatMap((x) => x.events)).toEqual(["put b=v@5", "put zz=v@6"]);
  });

  it("delivers a txn's events together, with the same revision, in op order", () => {
    const s = storeWith(["c", "0"]);
    const { seen, fn } = recorder();
    s.watch({ key: b("a"), rangeEnd: END }, 0, {}, fn);
    s.txn({ compare: [], success: [putOp("b", "1"), putOp("a", "1"), delOp("c")], failure: [] });
    expect(seen).toEqual([{ rev: 3, events: ["put b=1@3", "put a=1@3", "delete c=@3"] }]);
  });

  it("stops delivering after cancel, even from inside a callback", () => {
    const s = new MvccStore();
    const { seen, fn } = recorder();
    const w = s.watch({ key: b("a") }, 0, {}, fn);
    s.put({ key: b("a"), value: b("1") });
    w.cancel();
    s.put({ key: b("a"), value: b("2") });
    expect(seen.length).toBe(1);
    expect(s.watcherCount).toBe(0);
    let calls = 0;
    const self = s.watch({ key: b("a") }, 0, {}, () => {
      calls++;
      self.cancel();
    });
    s.put({ key: b("a"), value: b("3") });
    s.put({ key: b("a"), value: b("4") });
    expect(calls).toBe(1);
  });

  it("ends a watch whose callback throws, without failing the write", () => {
    const s = new MvccStore();
    const errors: Error[] = [];
    s.watch({ key: b("a") }, 0, { onError: (e) => errors.push(e) }, () => {
      throw new Error("consumer broke");
    });
    expect(s.put({ key: b("a"), value: b("1") }).header.revision).toBe(2);
    expect(errors.map((e) => e.message)).toEqual(["consumer broke"]);
    expect(s.watcherCount).toBe(0);
  });

  it("catches watchers up across a restore, or ends them if the snapshot compacted their history", () => {
    const leader = storeWith(["a", "1"]);
    const follower = MvccStore.restore(leader.snapshot());
    const { seen, fn } = recorder();
    const errors: string[] = [];
    const onError = (e: Error) => errors.push((e as Error & { code?: string }).code ?? e.message);
    follower.watch({ key: b("a") }, 0, { onError }, fn);
    follower.watch({ key: b("z") }, 0, { onError }, () => {});
    leader.put({ key: b("a"), value: b("2") }); // 3
    leader.put({ key: b("a"), value: b("3") }); // 4
    leader.compact({ revision: 2 });
    follower.restore(leader.snapshot());
    expect(seen.map((x) => x.rev)).toEqual([3, 4]);
    expect(follower.watcherCount).toBe(2);
    leader.put({ key: b("b"), value: b("x") }); // 5
    leader.compact({ revision: 5 });
    // Both watchers need revision 5, which the snapshot no longer holds as events.
    follower.restore(leader.snapshot());
    expect(errors).toEqual(["compacted", "compacted"]);
    expect(follower.watcherCount).toBe(0);
  });
});
