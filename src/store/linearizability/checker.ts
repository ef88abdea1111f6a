// A linearizability checker for histories over independent registers: Wing & Gong's search with Lowe's
// memoization, as in porcupine (anishathalye/porcupine), written for this project.
// Roles: `checkHistory` partitions by key and checks each register alone (linearizability is compositional);
// `checkPartition` runs the search for one register against a `Model`.
// The search: entries (calls and returns, sorted by time) form a doubly linked list. Walking from the head, a call
// can be linearized next if the model accepts it; then it and its return are lifted out of the list and the walk
// restarts. Reaching a return entry means the operation it closes was not linearized in time: backtrack.
// Invariants: the memo holds every (set of linearized operations, model state) already explored, so each is
// expanded once; ambiguous operations return at Infinity, after every real return, so they can always be
// linearized last (which is "never" for everything observable). A search that exceeds its budget answers
// "unknown", never ok.
import { describeOp, formatTime, normalize, partitionByKey, returnTime, type Operation } from "./history.js";
import { registerModel, type Model } from "./register-model.js";

export type CheckResult =
  | { ok: true; keys: number; ops: number; ms: number }
  | { ok: false; key: string; explanation: string; history: Operation[]; prefix: Operation[] }
  | { ok: "unknown"; key: string; explanation: string };

export interface CheckOptions {
  /** Search steps allowed per key before answering "unknown". */
  maxSteps?: number;
  /** Wall-clock budget for the whole check, in ms, before answering "unknown". */
  timeoutMs?: number;
  /** The history's time unit per millisecond, for explanations (default: nanoseconds). */
  unitsPerMs?: number;
}

interface Entry {
  id: number;
  time: number;
  isCall: boolean;
  /** On a call: its return entry. */
  match?: Entry;
  prev?: Entry;
  next?: Entry;
}

type Outcome = { kind: "ok" } | { kind: "violation"; prefix: number[] } | { kind: "budget"; steps: number };

/** Sorted call and return entries linked behind a sentinel head; calls sort before returns at equal times (overlap). */
function buildList(ops: readonly Operation[]): Entry {
  const entries: Entry[] = [];
  ops.forEach((op, id) => {
    const ret: Entry = { id, time: returnTime(op), isCall: false };
    entries.push({ id, time: op.call, isCall: true, match: ret }, ret);
  });
  entries.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.id - b.id : a.isCall ? -1 : 1) || 0);
  const head: Entry = { id: -1, time: -Infinity, isCall: false };
  let last = head;
  for (const e of entries) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

function unlink(e: Entry): void {
  e.prev!.next = e.next;
  if (e.next) e.next.prev = e.prev;
}

function relink(e: Entry): void {
  e.prev!.next = e;
  if (e.next) e.next.prev = e;
}

/** Lifts a call and its return out of the list (LIFO with `unlift`, whose pointers it leaves intact). */
function lift(call: Entry): void {
  unlink(call);
  unlink(call.match!);
}

function unlift(call: Entry): void {
  relink(call.match!);
  relink(call);
}

/** Exact memo of explored (linearized set, state): a Zobrist hash buckets the bitsets, compared word by word. */
class Memo {
  private readonly buckets = new Map<string, Uint32Array[]>();
  private readonly zobrist: Uint32Array;
  constructor(n: number) {
    this.zobrist = new Uint32Array(2 * n);
    let s = 0x9e3779b9;
    for (let i = 0; i < this.zobrist.length; i++) {
      s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      this.zobrist[i] = s;
    }
  }
  flip(h: [number, number], id: number): void {
    h[0] = (h[0] ^ this.zobrist[2 * id]) >>> 0;
    h[1] = (h[1] ^ this.zobrist[2 * id + 1]) >>> 0;
  }
  /** Adds the pair; false if it was already there. */
  add(h: [number, number], bits: Uint32Array, state: string): boolean {
    const key = `${h[0]}:${h[1]}:${state}`;
    const bucket = this.buckets.get(key);
    if (bucket?.some((b) => b.every((w, i) => w === bits[i]))) return false;
    if (bucket) bucket.push(bits.slice());
    else this.buckets.set(key, [bits.slice()]);
    return true;
  }
}

interface Frame<S> {
  call: Entry;
  state: S;
}

/** The search for one register. `deadline` is absolute (Date.now()); `maxSteps` bounds model steps. */
export function searchPartition<S>(ops: readonly Operation[], model: Model<S>, maxSteps: number, deadline: number): Outcome {
  const head = buildList(ops);
  const memo = new Memo(ops.length);
  const bits = new Uint32Array(Math.ceil(ops.length / 32) + 1);
  const hash: [number, number] = [0, 0];
  const stack: Frame<S>[] = [];
  let state = model.init();
  let longest: number[] = [];
  let steps = 0;
  let entry = head.next;
  while (head.next) {
    if (++steps > maxSteps || ((steps & 1023) === 0 && Date.now() > deadline)) return { kind: "budget", steps };
    if (!entry) break; // unreachable: the list always ends with a return entry
    if (entry.isCall) {
      const op = ops[entry.id];
      const next = model.step(state, op.op, op.input, op.output);
      let advanced = false;
      if (next !== undefined) {
        bits[entry.id >>> 5] ^= 1 << (entry.id & 31);
        memo.flip(hash, entry.id);
        if (memo.add(hash, bits, model.key(next))) {
          stack.push({ call: entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          advanced = true;
        } else {
          bits[entry.id >>> 5] ^= 1 << (entry.id & 31);
          memo.flip(hash, entry.id);
        }
      }
      if (!advanced) entry = entry.next;
      continue;
    }
    // A return entry: the operation it closes must have been linearized before now. Backtrack.
    if (stack.length > longest.length) longest = stack.map((f) => f.call.id);
    const top = stack.pop();
    if (!top) return { kind: "violation", prefix: longest };
    state = top.state;
    bits[top.call.id >>> 5] ^= 1 << (top.call.id & 31);
    memo.flip(hash, top.call.id);
    unlift(top.call);
    entry = top.call.next;
  }
  return { kind: "ok" };
}

/** Replays the prefix through the model to show the state after each step. */
function describePrefix<S>(ops: readonly Operation[], prefix: number[], model: Model<S>, maxLines: number): string[] {
  const lines: string[] = [];
  let state = model.init();
  prefix.forEach((id, i) => {
    const op = ops[id];
    state = model.step(state, op.op, op.input, op.output) ?? state;
    if (i >= prefix.length - maxLines) lines.push(`  ${i + 1}. #${id} ${describeOp(op)}  -> ${model.describe(state)}`);
  });
  if (prefix.length > maxLines) lines.unshift(`  ... ${prefix.length - maxLines} earlier steps`);
  return lines;
}

/** The key's history sorted by call, windowed around the first operation the prefix could not reach. */
function describeHistory(ops: readonly Operation[], prefix: number[], unitsPerMs: number, maxLines: number): string[] {
  const done = new Set(prefix);
  const order = ops.map((_, i) => i).sort((a, b) => ops[a].call - ops[b].call || a - b);
  // The frontier: the earliest-returning operation left out of the longest linearizable prefix.
  let frontier = -1;
  for (const i of order) if (!done.has(i) && (frontier < 0 || returnTime(ops[i]) < returnTime(ops[frontier]))) frontier = i;
  const at = Math.max(0, order.indexOf(frontier));
  const from = order.length <= maxLines ? 0 : Math.max(0, at - Math.floor(maxLines / 2));
  const lines = order.slice(from, from + maxLines).map((i) => {
    const op = ops[i];
    const mark = i === frontier ? ">>" : done.has(i) ? "  " : " *";
    return `${mark} #${i} [${formatTime(op.call, unitsPerMs)} .. ${formatTime(op.return, unitsPerMs)}] ${describeOp(op)}`;
  });
  if (from > 0) lines.unshift(`   ... ${from} earlier operations`);
  if (from + maxLines < order.length) lines.push(`   ... ${order.length - from - maxLines} later operations`);
  return lines;
}

function explain<S>(key: string, ops: readonly Operation[], prefix: number[], model: Model<S>, unitsPerMs: number): string {
  return [
    `key ${JSON.stringify(key)}: not linearizable (${ops.length} operations).`,
    `History by call time (ms; ">>" the earliest-returning operation no linearization reached, "*" others outside the longest prefix):`,
    ...describeHistory(ops, prefix, unitsPerMs, 400),
    `Longest linearizable prefix found (${prefix.length} operations; state after each):`,
    ...describePrefix(ops, prefix, model, 60),
  ].join("\n");
}

/** Checks a history of register operations: ok, a violation on some key (explained), or unknown (budget spent). */
export function checkHistory(history: readonly Operation[], options: CheckOptions = {}): CheckResult {
  const started = Date.now();
  const deadline = started + (options.timeoutMs ?? 120_000);
  const maxSteps = options.maxSteps ?? 50_000_000;
  const unitsPerMs = options.unitsPerMs ?? 1e6;
  const byKey = partitionByKey(normalize(history));
  let count = 0;
  for (const [key, ops] of [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    count += ops.length;
    const outcome = searchPartition(ops, registerModel, maxSteps, deadline);
    if (outcome.kind === "budget") {
      return { ok: "unknown", key, explanation: `key ${JSON.stringify(key)}: search budget spent after ${outcome.steps} steps (${ops.length} operations)` };
    }
    if (outcome.kind === "violation") {
      const sorted = [...ops].sort((a, b) => a.call - b.call);
      return { ok: false, key, explanation: explain(key, ops, outcome.prefix, registerModel, unitsPerMs), history: sorted, prefix: outcome.prefix.map((i) => ops[i]) };
    }
  }
  return { ok: true, keys: byKey.size, ops: count, ms: Date.now() - started };
}
