import { describe, expect, it } from "vitest";
import { CompactedError, MemoryStore, type WatchEvent } from "../../src/store/index.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("in-memory MVCC store", () => {
  it("advances one global revision per write and tracks per-key revisions and versions", async () => {
    const store = new MemoryStore();
    const a1 = await store.put("/a", bytes("1"));
    const b1 = await store.put("/b", bytes("1"));
    const a2 = await store.put("/a", bytes("2"));
    expect([a1.revision, b1.revision, a2.revision]).toEqual([1, 2, 3]);
    const a = await store.get("/a");
    expect(a).toMatchObject({ createRevision: 1, modRevision: 3, version: 2 });
    expect(text(a!.value)).toBe("2");
    expect(a2.prev?.modRevision).toBe(1);
  });

  it("ranges by prefix in key order, with a limit", async () => {
    const store = new MemoryStore();
    for (const k of ["/x/2", "/y/1", "/x/1", "/x/3"]) await store.put(k, bytes(k));
    const all = await store.range("/x/");
    expect(all.kvs.map((kv) => kv.key)).toEqual(["/x/1", "/x/2", "/x/3"]);
    expect(all.revision).toBe(4);
    expect((await store.range("/x/", { limit: 2 })).kvs).toHaveLength(2);
  });

  it("compare-and-swaps on the mod revision, with 0 meaning absent", async () => {
    const store = new MemoryStore();
    expect((await store.compareAndSwap("/k", 0, bytes("v1"))).succeeded).toBe(true);
    expect((await store.compareAndSwap("/k", 0, bytes("again"))).succeeded).toBe(false);
    const stale = await store.compareAndSwap("/k", 99, bytes("v2"));
    expect(stale.succeeded).toBe(false);
    expect(text(stale.current!.value)).toBe("v1");
    const ok = await store.compareAndSwap("/k", 1, bytes("v2"));
    expect(ok).toMatchObject({ succeeded: true, revision: 2 });
    expect((await store.compareAndSwap("/k", 2, null)).succeeded).toBe(true);
    expect(await store.get("/k")).toBeUndefined();
  });

  it("replays history to a watch from an old revision, then streams, in order", async () => {
    const store = new MemoryStore();
    await store.put("/w/a", bytes("1"));
    await store.put("/other", bytes("x"));
    await store.put("/w/a", bytes("2"));
    const seen: [string, string, number][] = [];
    const watcher = store.watch("/w/", 1, {
      onEvents: (events: WatchEvent[], rev) => events.forEach((e) => seen.push([e.type, e.kv.key, rev])),
      onError: (e) => {
        throw e;
      },
    });
    await store.delete("/w/a");
    watcher.cancel();
    await store.put("/w/b", bytes("late"));
    expect(seen).toEqual([["put", "/w/a", 1], ["put", "/w/a", 3], ["delete", "/w/a", 4]]);
  });

  it("tells a watch from a compacted revision so", async () => {
    const store = new MemoryStore({ historyLimit: 2 });
    for (let i = 0; i < 5; i++) await store.put("/k", bytes(String(i)));
    const error = await new Promise<Error>((resolve) => store.watch("/", 1, { onEvents: () => {}, onError: resolve }));
    expect(error).toBeInstanceOf(CompactedError);
    expect(error.message).toMatch(/compacted/);
  });
});
