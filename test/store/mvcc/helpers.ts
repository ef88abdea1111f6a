// Shared helpers for the MVCC tests: string <-> bytes and terse request builders.
import { MvccStore } from "../../../src/store/mvcc/mvcc-store.js";
import type { KeyValue, RangeResponse, RequestOp } from "../../../src/store/mvcc/types.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

export const b = (s: string): Uint8Array => enc.encode(s);
export const str = (u: Uint8Array): string => dec.decode(u);
export const keysOf = (r: RangeResponse | { kvs: KeyValue[] }): string[] => r.kvs.map((kv) => str(kv.key));
export const END = new Uint8Array([0]);

export function putOp(key: string, value: string, lease?: number): RequestOp {
  return { put: { key: b(key), value: b(value), lease } };
}

export function rangeOp(key: string, rangeEnd?: Uint8Array): RequestOp {
  return { range: { key: b(key), rangeEnd } };
}

export function delOp(key: string, rangeEnd?: Uint8Array): RequestOp {
  return { deleteRange: { key: b(key), rangeEnd } };
}

/** A store with the given keys put one per revision, in order. */
export function storeWith(...pairs: [string, string][]): MvccStore {
  const s = new MvccStore();
  for (const [k, v] of pairs) s.put({ key: b(k), value: b(v) });
  return s;
}

/** mulberry32: a small seeded PRNG, so property tests replay exactly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Catches an error and returns it, for assertions on codes and extra fields. */
export function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}
