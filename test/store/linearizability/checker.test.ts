// The linearizability checker on classic histories (each a few operations with hand-picked overlaps), and on large
// random histories generated from a real sequential register: valid as generated, invalid after one mutation.
import { describe, expect, it } from "vitest";
import { checkHistory } from "../../../src/store/linearizability/checker.js";
import type { Operation, Value } from "../../../src/store/linearizability/history.js";

const put = (client: number, value: string, call: number, ret: number | undefined, key = "k"): Operation => ({
  client, key, op: "put", input: { value }, output: ret === undefined ? undefined : { ok: true }, call, return: ret ?? Infinity,
});
const get = (client: number, value: Value, call: number, ret: number, key = "k"): Operation => ({
  client, key, op: "get", input: {}, output: { value }, call, return: ret,
});
const cas = (client: number, expect: string, value: string, ok: boolean | undefined, call: number, ret: number | undefined): Operation => ({
  client, key: "k", op: "cas", input: { expect, value }, output: ok === undefined ? undefined : { ok }, call, return: ret ?? Infinity,
});

describe("checkHistory: classic histories", () => {
  it("accepts a valid concurrent history", () => {
    const h = [put(1, "a", 0, 10), get(2, null, 1, 3), get(3, "a", 2, 12), put(2, "b", 11, 20), get(1, "b", 15, 25)];
    expect(checkHistory(h).ok).toBe(true);
  });

  it("rejects a stale read after a completed write, and explains it", () => {
    const h = [put(1, "a", 0, 10), put(1, "b", 11, 20), get(2, "a", 21, 30)];
    const r = checkHistory(h);
    expect(r.ok).toBe(false);
    if (r.ok !== false) return;
    expect(r.key).toBe("k");
    expect(r.explanation).toContain('c2 get() = "a"');
    expect(r.explanation).toContain("Longest linearizable prefix found (2 operations");
  });

  it("rejects a read-your-writes violation", () => {
    expect(checkHistory([put(1, "a", 0, 10), get(1, null, 11, 12)]).ok).toBe(false);
  });

  it("allows concurrent writes in either order", () => {
    const writes = [put(1, "a", 0, 10), put(2, "b", 1, 11)];
    expect(checkHistory([...writes, get(3, "a", 12, 13), get(3, "a", 14, 15)]).ok).toBe(true);
    expect(checkHistory([...writes, get(3, "b", 12, 13), get(3, "b", 14, 15)]).ok).toBe(true);
    // But not both orders at once: once a later read has settled the order, it stays settled.
    expect(checkHistory([...writes, get(3, "b", 12, 13), get(3, "a", 14, 15)]).ok).toBe(false);
  });

  it("accepts a timed-out write that later appears in a read, or never appears", () => {
    expect(checkHistory([put(1, "a", 0, 10), put(2, "b", 11, undefined), get(3, "a", 20, 21), get(3, "b", 30, 31)]).ok).toBe(true);
    expect(checkHistory([put(1, "a", 0, 10), put(2, "b", 11, undefined), get(3, "a", 20, 21), get(3, "a", 30, 31)]).ok).toBe(true);
    // Once it has appeared it cannot disappear: it took effect at one point.
    expect(checkHistory([put(1, "a", 0, 10), put(2, "b", 11, undefined), get(3, "b", 20, 21), get(3, "a", 30, 31)]).ok).toBe(false);
    // Nor can it take effect before it was called.
    expect(checkHistory([put(1, "a", 0, 10), get(3, "b", 11, 12), put(2, "b", 20, undefined)]).ok).toBe(false);
  });

  it("drops timed-out reads: they constrain nothing", () => {
    const lost: Operation = { client: 9, key: "k", op: "get", input: {}, call: 0, return: Infinity };
    expect(checkHistory([put(1, "a", 0, 10), lost, get(2, "a", 11, 12)]).ok).toBe(true);
  });

  it("follows cas semantics", () => {
    expect(checkHistory([put(1, "a", 0, 1), cas(2, "a", "b", true, 2, 3), get(1, "b", 4, 5)]).ok).toBe(true);
    expect(checkHistory([put(1, "a", 0, 1), cas(2, "x", "b", false, 2, 3), get(1, "a", 4, 5)]).ok).toBe(true);
    expect(checkHistory([put(1, "a", 0, 1), cas(2, "a", "b", false, 2, 3)]).ok).toBe(false);
    expect(checkHistory([put(1, "a", 0, 1), cas(2, "x", "b", true, 2, 3)]).ok).toBe(false);
    expect(checkHistory([cas(2, "x", "b", true, 0, 3)]).ok).toBe(false); // absent never equals a value
    // Two concurrent cas from the same value: only one may win.
    expect(checkHistory([put(1, "a", 0, 1), cas(2, "a", "b", true, 2, 5), cas(3, "a", "c", true, 2, 5)]).ok).toBe(false);
    // An ambiguous cas that happened, or one that did not.
    expect(checkHistory([put(1, "a", 0, 1), cas(2, "a", "b", undefined, 2, undefined), get(1, "b", 4, 5)]).ok).toBe(true);
    expect(checkHistory([put(1, "a", 0, 1), cas(2, "a", "b", undefined, 2, undefined), get(1, "a", 4, 5)]).ok).toBe(true);
    expect(checkHistory([put(1, "a", 0, 1), cas(2, "x", "b", undefined, 2, undefined), get(1, "b", 4, 5)]).ok).toBe(false);
  });

  it("checks keys independently and names the offending one", () => {
    const r = checkHistory([put(1, "a", 0, 10, "x"), get(2, "a", 11, 12, "x"), put(1, "a", 0, 10, "y"), get(2, null, 11, 12, "y")]);
    expect(r.ok === false && r.key).toBe("y");
  });
});

/** A deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A valid history: clients run operations one at a time with random durations; each takes effect at a random
 * point inside its interval, against a real register. Some writes time out (their outcome is hidden).
 */
function randomHistory(seed: number, clients: number, perClient: number): Operation[] {
  const random = rng(seed);
  const planned: { op: Operation; at: number }[] = [];
  for (let c = 0; c < clients; c++) {
    let t = random() * 10;
    for (let i = 0; i < perClient; i++) {
      const call = t + random() * 5;
      const at = call + random() * 20;
      const ret = at + random() * 20;
      t = ret;
      const r = random();
      const value = `c${c}-${i}`;
      const op: Operation = r < 0.4 ? { client: c, key: "k", op: "get", input: {}, call, return: ret }
        : r < 0.7 ? { client: c, key: "k", op: "put", input: { value }, call, return: ret }
        : { client: c, key: "k", op: "cas", input: { expect: "", value }, call, return: ret };
      planned.push({ op, at });
    }
  }
  planned.sort((a, b) => a.at - b.at);
  let state: Value = null;
  const written: string[] = [];
  for (const { op } of planned) {
    if (op.op === "cas") op.input.expect = random() < 0.6 && state !== null ? state : (written[Math.floor(random() * written.length)] ?? "none");
    if (op.op === "get") op.output = { value: state };
    else if (op.op === "put") op.output = { ok: true };
    else op.output = { ok: state === op.input.expect };
    if (op.op === "put" || (op.op === "cas" && op.output.ok)) {
      state = op.input.value!;
      written.push(state);
    }
    if (op.op !== "get" && random() < 0.03) {
      op.output = undefined;
      op.return = Infinity;
    }
  }
  return planned.map((p) => p.op);
}

describe("checkHistory: random histories from a real register", () => {
  it("accepts a large valid history, and rejects it after a stale read is planted", () => {
    const h = randomHistory(42, 8, 250);
    const started = Date.now();
    const r = checkHistory(h);
    expect(r).toMatchObject({ ok: true, ops: h.length });
    expect(Date.now() - started).toBeLessThan(30_000);
    // Once a write has completed the register is never absent again: a read of "absent" after it is stale.
    const firstWrite = Math.min(...h.filter((o) => o.op === "put" && o.output).map((o) => o.return!));
    const victim = h.findIndex((o) => o.op === "get" && o.call > firstWrite + 100);
    const mutated = h.map((o, i) => (i === victim ? { ...o, output: { value: null } } : o));
    expect(checkHistory(mutated).ok).toBe(false);
  });

  it("accepts several seeds with many concurrent clients", () => {
    for (const seed of [1, 2, 3, 4, 5]) expect(checkHistory(randomHistory(seed, 12, 60)).ok).toBe(true);
  });

  it("answers unknown, never ok, when the budget runs out", () => {
    const r = checkHistory(randomHistory(7, 8, 100), { maxSteps: 50 });
    expect(r.ok).toBe("unknown");
  });
});
