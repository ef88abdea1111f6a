// Snapshot/restore equality under ~2000 seeded random ops (every range at every retained revision, leases,
// watch replay), byte-identical snapshots across replicas, the command codec, and the Raft StateMachine wrapper.
import { describe, expect, it } from "vitest";
import { decodeCommand, encodeCommand } from "../../../src/store/mvcc/codec.js";
import { MvccStore } from "../../../src/store/mvcc/mvcc-store.js";
import { MvccStateMachine } from "../../../src/store/mvcc/state-machine.js";
import type { MvccCommand, RequestOp, WatchEvent } from "../../../src/store/mvcc/types.js";
import { MvccError } from "../../../src/store/mvcc/types.js";
import { b, END, prng } from "./helpers.js";

/** A random command over a small key space, so keys collide, get deleted, re-created, leased and compacted. */
function randomCommand(rnd: () => number, store: MvccStore): MvccCommand {
  const key = () => b(`k${Math.floor(rnd() * 40)}`);
  const value = () => b(`v${Math.floor(rnd() * 1000)}`.repeat(1 + Math.floor(rnd() * 3)));
  const lease = () => (rnd() < 0.2 ? 1 + Math.floor(rnd() * 6) : 0);
  const op = (): RequestOp => {
    const r = rnd();
    if (r < 0.5) return { put: { key: key(), value: value(), lease: lease() } };
    if (r < 0.7) return { deleteRange: { key: key(), rangeEnd: rnd() < 0.3 ? key() : undefined } };
    return { range: { key: key(), rangeEnd: END, limit: 3 } };
  };
  const r = rnd();
  if (r < 0.45) return { put: { key: key(), value: value(), lease: lease(), prevKv: rnd() < 0.5 } };
  if (r < 0.6) return { deleteRange: { key: key(), rangeEnd: rnd() < 0.2 ? key() : undefined, prevKv: true } };
  if (r < 0.8) {
    const compare = [{ key: key(), target: "version" as const, result: "greater" as const, value: Math.floor(rnd() * 3) }];
    return { txn: { compare, success: [op(), op(), op()], failure: [op()] } };
  }
  if (r < 0.85) return { compact: { revision: store.compactRevision + 1 + Math.floor(rnd() * 5) } };
  if (r < 0.93) return { leaseGrant: { id: rnd() < 0.5 ? 0 : 1 + Math.floor(rnd() * 6), ttlSeconds: 10 } };
  return { leaseRevoke: { id: 1 + Math.floor(rnd() * 6) } };
}

/** Applies, turning MvccErrors into values the way the state machine does. */
function applyOrError(store: MvccStore, cmd: MvccCommand): unknown {
  try {
    return store.apply(cmd);
  } catch (err) {
    if (err instanceof MvccError) return { error: err.code };
    throw err;
  }
}

function everyRange(store: MvccStore): unknown[] {
  const out: unknown[] = [];
  for (let rev = Math.max(store.compactRevision, 1); rev <= store.revision; rev++) {
    out.push(store.range({ key: END, rangeEnd: END, revision: rev }));
  }
  return out;
}

function replay(store: MvccStore): [WatchEvent[], number][] {
  const got: [WatchEvent[], number][] = [];
  const w = store.watch({ key: END, rangeEnd: END }, store.compactRevision + 1, { prevKv: true }, (e, r) => got.push([e, r]));
  w.cancel();
  return got;
}

describe("snapshot and restore", () => {
  it("restores an identical store after ~2000 random ops (every range at every retained revision)", () => {
    const rnd = prng(20240601);
    const store = new MvccStore();
    for (let i = 0; i < 2000; i++) {
      applyOrError(store, randomCommand(rnd, store));
      if (i % 400 !== 399) continue;
      const copy = MvccStore.restore(store.snapshot());
      expect(copy.revision).toBe(store.revision);
      expect(copy.compactRevision).toBe(store.compactRevision);
      expect(copy.leases()).toEqual(store.leases());
      expect(everyRange(copy)).toEqual(everyRange(store));
      expect(replay(copy)).toEqual(replay(store));
      expect(copy.snapshot()).toEqual(store.snapshot());
    }
    expect(store.revision).toBeGreaterThan(1000);
    // The restored copy keeps evolving exactly like the original.
    const copy = MvccStore.restore(store.snapshot());
    const rndA = prng(99);
    const rndB = prng(99);
    for (let i = 0; i < 300; i++) expect(applyOrError(copy, randomCommand(rndB, copy))).toEqual(applyOrError(store, randomCommand(rndA, store)));
    expect(copy.snapshot()).toEqual(store.snapshot());
  });

  it("is deterministic: two stores applying the same commands give byte-identical snapshots", () => {
    const cmds: MvccCommand[] = [];
    const gen = new MvccStore();
    const rnd = prng(42);
    for (let i = 0; i < 1500; i++) {
      const cmd = randomCommand(rnd, gen);
      applyOrError(gen, cmd);
      cmds.push(cmd);
    }
    const a = new MvccStore();
    const bStore = new MvccStore();
    const resultsA = cmds.map((c) => applyOrError(a, decodeCommand(encodeCommand(c))));
    const resultsB = cmds.map((c) => applyOrError(bStore, decodeCommand(encodeCommand(c))));
    expect(resultsA).toEqual(resultsB);
    expect(Buffer.from(a.snapshot()).equals(Buffer.from(bStore.snapshot()))).toBe(true);
    expect(Buffer.from(a.snapshot()).equals(Buffer.from(gen.snapshot()))).toBe(true);
  });

  it("rejects a corrupt snapshot", () => {
    const snap = new MvccStore().snapshot();
    expect(() => MvccStore.restore(snap.slice(0, 3))).toThrow(MvccError);
    expect(() => MvccStore.restore(new Uint8Array([...snap, 0]))).toThrow(MvccError);
  });
});

describe("codec", () => {
  it("round-trips commands exactly, bytes included", () => {
    const cmds: MvccCommand[] = [
      { put: { key: new Uint8Array([0, 255, 1]), value: new Uint8Array(0), lease: 7, prevKv: true } },
      { deleteRange: { key: b("a"), rangeEnd: END } },
      {
        txn: {
          compare: [{ key: b("a"), target: "value", result: "not-equal", value: b("x") }, { key: b("a"), target: "mod", result: "less", value: 9 }],
          success: [{ range: { key: b("a"), limit: 2, sortOrder: "descend", sortTarget: "mod" } }, { txn: { compare: [], success: [], failure: [] } }],
          failure: [{ deleteRange: { key: b("q") } }],
        },
      },
      { compact: { revision: 12 } },
      { leaseGrant: { id: 0, ttlSeconds: 30 } },
      { leaseRevoke: { id: 3 } },
    ];
    for (const c of cmds) expect(decodeCommand(encodeCommand(c))).toEqual(c);
    const buf = Buffer.from("key");
    expect(decodeCommand(encodeCommand({ put: { key: buf, value: buf } }))).toEqual({ put: { key: b("key"), value: b("key") } });
  });

  it("rejects garbage as invalid", () => {
    for (const bad of [b("{"), b("[]"), b('{"nope":{}}'), new Uint8Array([0xff])]) {
      expect(() => decodeCommand(bad)).toThrow(MvccError);
    }
  });
});

describe("MvccStateMachine", () => {
  it("applies encoded commands, returns rejections as values, and snapshots", async () => {
    const sm = new MvccStateMachine();
    const entry = (index: number, cmd: MvccCommand) => ({ index, term: 1, data: encodeCommand(cmd) });
    expect(sm.apply(entry(1, { put: { key: b("k"), value: b("v") } }))).toEqual({ header: { revision: 2 } });
    expect(sm.apply(entry(2, { put: { key: b("k"), value: b("v"), lease: 5 } }))).toEqual({
      error: { code: "lease-not-found", message: "lease 5 not found" },
    });
    expect(sm.apply({ index: 3, term: 1, data: b("junk") })).toMatchObject({ error: { code: "invalid" } });
    expect(sm.apply({ index: 4, term: 2, data: new Uint8Array(0) })).toBeUndefined();
    expect(sm.lastApplied).toBe(4);
    const other = new MvccStateMachine();
    await other.restore(await sm.snapshot());
    expect(other.store.range({ key: b("k") }).kvs[0].value).toEqual(b("v"));
  });
});
