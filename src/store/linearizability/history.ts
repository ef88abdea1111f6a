// Operation records of a concurrent history over independent registers, as a linearizability checker consumes them.
// Roles: the workload (or a test) produces them; the checker partitions them by key and searches each partition.
// Invariants: `call <= return`; times share one clock (any unit, only their order matters); an operation whose
// outcome is unknown (timed out, or failed in a way that does not prove it never took effect) has
// `return = Infinity` and no `output`: it may take effect at any point after its call, or never.

export type OpKind = "put" | "get" | "cas";

/** A register's value; `null` is "absent" (never written). */
export type Value = string | null;

export interface OpInput {
  /** put: the value written; cas: the value written when the comparison holds. */
  value?: string;
  /** cas: the value the register must hold for the write to happen. */
  expect?: string;
}

export interface OpOutput {
  /** get: the value read (`null` when absent). */
  value?: Value;
  /** put: true; cas: whether the comparison held and the write happened. */
  ok?: boolean;
}

export interface Operation {
  client: number;
  key: string;
  op: OpKind;
  input: OpInput;
  /** Undefined when the outcome is unknown (then `return` is Infinity). */
  output?: OpOutput;
  call: number;
  /** Infinity (or undefined) when the outcome is unknown. */
  return?: number;
}

/** Whether the operation's outcome is unknown: it may or may not have taken effect. */
export function isAmbiguous(op: Operation): boolean {
  return op.output === undefined || op.return === undefined || !Number.isFinite(op.return);
}

/** The return time the search uses: infinite for ambiguous operations, so they can be placed anywhere after their call. */
export function returnTime(op: Operation): number {
  return isAmbiguous(op) ? Infinity : (op.return as number);
}

/**
 * Normalizes a history for checking: ambiguous gets are dropped (a read whose answer nobody saw constrains
 * nothing), and every other ambiguous operation gets an infinite return and no output.
 */
export function normalize(ops: readonly Operation[]): Operation[] {
  const out: Operation[] = [];
  for (const op of ops) {
    if (!isAmbiguous(op)) out.push(op);
    else if (op.op !== "get") out.push({ ...op, output: undefined, return: Infinity });
  }
  return out;
}

/** Splits a history into per-key histories (registers are independent, so each can be checked alone). */
export function partitionByKey(ops: readonly Operation[]): Map<string, Operation[]> {
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    const list = byKey.get(op.key);
    if (list) list.push(op);
    else byKey.set(op.key, [op]);
  }
  return byKey;
}

const show = (v: Value | undefined): string => (v === null ? "absent" : v === undefined ? "?" : JSON.stringify(v));

/** One line describing an operation, e.g. `c3 cas("a" -> "b") = ok`. */
export function describeOp(op: Operation): string {
  const args = op.op === "put" ? show(op.input.value) : op.op === "cas" ? `${show(op.input.expect)} -> ${show(op.input.value)}` : "";
  let result: string;
  if (isAmbiguous(op)) result = "? (ambiguous)";
  else if (op.op === "get") result = show(op.output?.value);
  else result = op.output?.ok ? "ok" : "failed";
  return `c${op.client} ${op.op}(${args}) = ${result}`;
}

/** Formats a time in the history's unit (the workload uses nanoseconds: shown as milliseconds). */
export function formatTime(t: number | undefined, unitsPerMs = 1e6): string {
  return t === undefined || !Number.isFinite(t) ? "inf" : (t / unitsPerMs).toFixed(3);
}
