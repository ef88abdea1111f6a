// Transaction checks and compare evaluation, mirroring etcd (etcdserver/api/v3rpc/key.go checkTxnRequest and
// checkIntervals; etcdserver/txn compareToPath, applyCompare, compareKV).
//
// Invariants: everything that can reject a txn is decided here, before the first write, so a rejected txn leaves
// no trace. The branch of every (nested) txn is chosen up front against the state before the txn, as etcd's
// compareToPath does: a nested txn's compares do not see the outer txn's writes.
import type { Bounds } from "./bytes.js";
import { compareBytes, inBounds, isBytes, keyString, toBounds } from "./bytes.js";
import type { KeyIndex, Version } from "./key-index.js";
import type { Compare, PutRequest, RequestOp, TxnRequest } from "./types.js";
import { MvccError } from "./types.js";

/** The branch each txn takes: `nested` follows the txn ops of the chosen branch, in order. */
export interface TxnPlan {
  succeeded: boolean;
  nested: TxnPlan[];
}

/** Rejects malformed puts the way etcd's API layer does. */
export function checkPutShape(p: PutRequest): void {
  toBounds({ key: p.key });
  if (!isBytes(p.value)) throw new MvccError("invalid", "value must be bytes");
  if (p.ignoreValue && p.value.length !== 0) throw new MvccError("invalid", "value is provided with ignoreValue");
  if (p.ignoreLease && (p.lease ?? 0) !== 0) throw new MvccError("invalid", "lease is provided with ignoreLease");
  const lease = p.lease ?? 0;
  if (!Number.isSafeInteger(lease) || lease < 0) throw new MvccError("invalid", `invalid lease id ${lease}`);
}

/** Op counts (etcd --max-txn-ops, per compare/success/failure list, recursively) and request shapes. */
export function checkTxnShape(t: TxnRequest, maxOps: number): void {
  if (!Array.isArray(t.compare) || !Array.isArray(t.success) || !Array.isArray(t.failure)) {
    throw new MvccError("invalid", "txn needs compare, success and failure lists");
  }
  if (t.compare.length > maxOps || t.success.length > maxOps || t.failure.length > maxOps) {
    throw new MvccError("too-many-ops", `too many operations in txn request (max ${maxOps})`);
  }
  for (const c of t.compare) checkCompareShape(c);
  for (const op of [...t.success, ...t.failure]) {
    if ("range" in op) toBounds(op.range);
    else if ("put" in op) checkPutShape(op.put);
    else if ("deleteRange" in op) toBounds(op.deleteRange);
    else if ("txn" in op) checkTxnShape(op.txn, maxOps);
    else throw new MvccError("invalid", "unknown request op");
  }
}

function checkCompareShape(c: Compare): void {
  toBounds(c);
  const wantsBytes = c.target === "value";
  if (!["version", "create", "mod", "value", "lease"].includes(c.target)) throw new MvccError("invalid", "bad compare target");
  if (!["equal", "greater", "less", "not-equal"].includes(c.result)) throw new MvccError("invalid", "bad compare result");
  if (wantsBytes ? !isBytes(c.value) : typeof c.value !== "number") {
    throw new MvccError("invalid", `compare on ${c.target} needs a ${wantsBytes ? "byte" : "number"} value`);
  }
}

interface Intervals {
  puts: Set<string>;
  dels: Bounds[];
}

function deleted(dels: Bounds[], key: string): boolean {
  return dels.some((b) => inBounds(b, key));
}

/**
 * etcd checkIntervals: within one branch (nested txns included) no key may be put twice, nor put and deleted.
 * A key put in both branches of a nested txn is fine: only one of them runs.
 */
export function checkIntervals(ops: RequestOp[]): Intervals {
  const dels: Bounds[] = [];
  for (const op of ops) if ("deleteRange" in op) dels.push(toBounds(op.deleteRange));
  const puts = new Set<string>();
  const dup = (k: string): never => {
    throw new MvccError("duplicate-key", `duplicate key given in txn request: ${JSON.stringify(k)}`);
  };
  for (const op of ops) {
    if (!("txn" in op)) continue;
    const then = checkIntervals(op.txn.success);
    const other = checkIntervals(op.txn.failure);
    for (const k of then.puts) {
      if (puts.has(k) || deleted(dels, k)) dup(k);
      puts.add(k);
    }
    for (const k of other.puts) {
      if ((puts.has(k) && !then.puts.has(k)) || deleted(dels, k)) dup(k);
      puts.add(k);
    }
    dels.push(...then.dels, ...other.dels);
  }
  for (const op of ops) {
    if (!("put" in op)) continue;
    const k = keyString(op.put.key);
    if (puts.has(k) || deleted(dels, k)) dup(k);
    puts.add(k);
  }
  return { puts, dels };
}

function compareNumbers(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** etcd compareKV; a missing key compares as the zero KeyValue (version, create, mod and lease 0). */
function compareVersion(c: Compare, v: Version | undefined): boolean {
  let r: number;
  switch (c.target) {
    case "value":
      r = compareBytes(v?.value ?? new Uint8Array(0), c.value as Uint8Array);
      break;
    case "version":
      r = compareNumbers(v?.version ?? 0, c.value as number);
      break;
    case "create":
      r = compareNumbers(v?.create ?? 0, c.value as number);
      break;
    case "mod":
      r = compareNumbers(v?.mod ?? 0, c.value as number);
      break;
    case "lease":
      r = compareNumbers(v?.lease ?? 0, c.value as number);
      break;
  }
  if (c.result === "equal") return r === 0;
  if (c.result === "not-equal") return r !== 0;
  return c.result === "greater" ? r > 0 : r < 0;
}

/**
 * etcd applyCompare: every key alive in the range must satisfy the compare; an empty range compares the zero
 * KeyValue, except that a value compare on no key always fails (gRPC cannot tell a missing value from "").
 */
export function evaluateCompare(index: KeyIndex, c: Compare, rev: number): boolean {
  let any = false;
  let ok = true;
  index.forEach(toBounds(c), (h) => {
    const v = h.at(rev);
    if (v === undefined) return true;
    any = true;
    ok = compareVersion(c, v);
    return ok;
  });
  if (any) return ok;
  return c.target === "value" ? false : compareVersion(c, undefined);
}

/** etcd compareToPath: chooses every branch against the state at `rev`, before anything is written. */
export function planTxn(index: KeyIndex, t: TxnRequest, rev: number): TxnPlan {
  const succeeded = t.compare.every((c) => evaluateCompare(index, c, rev));
  const nested: TxnPlan[] = [];
  for (const op of succeeded ? t.success : t.failure) {
    if ("txn" in op) nested.push(planTxn(index, op.txn, rev));
  }
  return { succeeded, nested };
}
