// MvccStore: the replicated key-value state machine, our take on etcd's mvcc and lease packages.
//
// Invariants:
// - `revision` starts at 1 (an empty store, as etcd) and every write that changes something advances it by
//   exactly one; a txn's writes share that revision with increasing sub-revisions; a no-op write leaves it alone.
// - apply is deterministic: the same commands from the same state give the same results, state and snapshot
//   bytes on every replica (no clock, no randomness, no iteration over unordered containers in outputs).
// - Every rejection is decided before the first write (see txn.ts), so a rejected command changes nothing.
// - Reads are possible at any revision >= compactRevision; history below it is forgotten except each key's
//   version current at compactRevision (etcd keeps the same).
// - A lease's key set is exactly the keys whose current version carries that lease.
// - Returned KeyValue byte arrays are shared with the store: treat them as read-only.
import type { Bounds } from "./bytes.js";
import { EMPTY, keyString, toBounds } from "./bytes.js";
import { MvccCompactedError, MvccFutureRevisionError } from "./errors.js";
import type { KeyHistory, Version } from "./key-index.js";
import { KeyIndex } from "./key-index.js";
import { rangeIndex } from "./range.js";
import { decodeSnapshot, encodeSnapshot } from "./snapshot.js";
import type { TxnPlan } from "./txn.js";
import { checkIntervals, checkPutShape, checkTxnShape, planTxn } from "./txn.js";
import type {
  CompactionRequest,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyRange,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseInfo,
  LeaseRevokeRequest,
  MvccCommand,
  MvccResult,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from "./types.js";
import { MvccError } from "./types.js";
import type { Change, LogRecord, WatchCallback, WatchHandle, WatchOptions } from "./watch.js";
import { WatchHub } from "./watch.js";

export interface MvccStoreOptions {
  /** Most ops in each of a txn's compare, success and failure lists (etcd --max-txn-ops). */
  maxTxnOps?: number;
}

interface LeaseState {
  id: number;
  ttlSeconds: number;
  keys: Set<string>;
}

/** One write transaction in progress (etcd storeTxnWrite): its writes go to beginRev + 1. */
class WriteTxn {
  readonly changes: Change[] = [];
  readonly headers: ResponseHeader[] = [];

  constructor(readonly beginRev: number) {}

  get rev(): number {
    return this.beginRev + 1;
  }

  /** etcd storeTxnWrite.Range: reads see the txn's own writes once there are any. */
  get readRev(): number {
    return this.changes.length > 0 ? this.beginRev + 1 : this.beginRev;
  }

  /** A write response header, filled with the final revision on commit. */
  header(): ResponseHeader {
    const h = { revision: 0 };
    this.headers.push(h);
    return h;
  }
}

function checkUint(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new MvccError("invalid", `invalid ${what}: ${String(v)}`);
  return v;
}

export class MvccStore {
  private rev = 1;
  private compactRev = 0;
  private nextLeaseId = 1;
  private index = new KeyIndex();
  /** Changes of every revision after compactRev, in revision order (the watch replay source). */
  private log: LogRecord[] = [];
  private leaseMap = new Map<number, LeaseState>();
  private readonly hub = new WatchHub();
  private readonly maxTxnOps: number;

  constructor(options: MvccStoreOptions = {}) {
    this.maxTxnOps = options.maxTxnOps ?? 128;
  }

  get revision(): number {
    return this.rev;
  }

  get compactRevision(): number {
    return this.compactRev;
  }

  /** Number of keys in the index, deleted ones not yet compacted included. */
  get indexSize(): number {
    return this.index.size;
  }

  get watcherCount(): number {
    return this.hub.size;
  }

  // ---- reads ----

  range(req: RangeRequest): RangeResponse {
    const b = toBounds(req);
    const rev = this.readRevision(req.revision ?? 0, this.rev);
    return rangeIndex(this.index, b, req, rev, this.rev);
  }

  /** etcd rangeKeys: <= 0 is the current revision; below the compaction point or beyond `current` fails. */
  private readRevision(requested: number, current: number): number {
    if (typeof requested !== "number" || !Number.isSafeInteger(requested)) throw new MvccError("invalid", "bad revision");
    if (requested <= 0) return current;
    if (requested > current) throw new MvccFutureRevisionError(requested, current);
    if (requested < this.compactRev) throw new MvccCompactedError(requested, this.compactRev);
    return requested;
  }

  // ---- writes ----

  /** Applies one replicated command. `_nowMs` is accepted for the caller's convenience and unused: no clocks here. */
  apply(command: MvccCommand, _nowMs?: number): MvccResult {
    if ("put" in command) return this.put(command.put);
    if ("deleteRange" in command) return this.deleteRange(command.deleteRange);
    if ("txn" in command) return this.txn(command.txn);
    if ("compact" in command) return this.compact(command.compact);
    if ("leaseGrant" in command) return this.leaseGrant(command.leaseGrant);
    if ("leaseRevoke" in command) return this.leaseRevoke(command.leaseRevoke);
    throw new MvccError("invalid", "unknown command");
  }

  put(req: PutRequest): PutResponse {
    checkPutShape(req);
    this.checkPut(req);
    return this.write((w) => this.putIn(w, req));
  }

  deleteRange(req: DeleteRangeRequest): DeleteRangeResponse {
    const b = toBounds(req);
    return this.write((w) => this.deleteIn(w, b, !!req.prevKv));
  }

  txn(req: TxnRequest): TxnResponse {
    checkTxnShape(req, this.maxTxnOps);
    checkIntervals(req.success);
    checkIntervals(req.failure);
    const plan = planTxn(this.index, req, this.rev);
    this.checkPlanned(req, plan);
    return this.write((w) => this.txnIn(w, req, plan));
  }

  private write<T>(fn: (w: WriteTxn) => T): T {
    const w = new WriteTxn(this.rev);
    const result = fn(w);
    let record: LogRecord | undefined;
    if (w.changes.length > 0) {
      this.rev = w.rev;
      record = { rev: this.rev, changes: w.changes };
      this.log.push(record);
    }
    for (const h of w.headers) h.revision = this.rev;
    if (record !== undefined) this.hub.notify(record);
    return result;
  }

  /** etcd checkRequestPut: ignoreValue/ignoreLease need the key; a lease must exist. */
  private checkPut(req: PutRequest): void {
    if ((req.ignoreValue || req.ignoreLease) && this.index.get(keyString(req.key))?.latest() === undefined) {
      throw new MvccError("key-not-found", "key not found");
    }
    const lease = req.lease ?? 0;
    if (!req.ignoreLease && lease !== 0 && !this.leaseMap.has(lease)) {
      throw new MvccError("lease-not-found", `lease ${lease} not found`);
    }
  }

  /** Checks the ops of the branches the plan takes (etcd checkRequests over the txn path). */
  private checkPlanned(req: TxnRequest, plan: TxnPlan): void {
    let n = 0;
    for (const op of plan.succeeded ? req.success : req.failure) {
      if ("put" in op) this.checkPut(op.put);
      else if ("range" in op) this.readRevision(op.range.revision ?? 0, this.rev);
      else if ("txn" in op) this.checkPlanned(op.txn, plan.nested[n++]);
    }
  }

  private putIn(w: WriteTxn, req: PutRequest): PutResponse {
    const h = this.index.getOrCreate(keyString(req.key), req.key);
    const prev = h.latest();
    const v: Version = {
      mod: w.rev,
      sub: w.changes.length,
      create: prev ? prev.create : w.rev,
      version: prev ? prev.version + 1 : 1,
      value: req.ignoreValue ? (prev?.value ?? EMPTY) : new Uint8Array(req.value),
      lease: req.ignoreLease ? (prev?.lease ?? 0) : (req.lease ?? 0),
      tombstone: false,
    };
    h.versions.push(v);
    this.moveLease(h.key, prev?.lease ?? 0, v.lease);
    w.changes.push({ h, v, prev });
    const res: PutResponse = { header: w.header() };
    if (req.prevKv && prev) res.prevKv = h.toKeyValue(prev);
    return res;
  }

  private deleteIn(w: WriteTxn, b: Bounds, wantPrev: boolean): DeleteRangeResponse {
    const targets: KeyHistory[] = [];
    this.index.forEach(b, (h) => {
      if (h.latest() !== undefined) targets.push(h);
    });
    const prevKvs = [];
    for (const h of targets) {
      const prev = h.latest() as Version;
      const v: Version = { mod: w.rev, sub: w.changes.length, create: 0, version: 0, value: EMPTY, lease: 0, tombstone: true };
      h.versions.push(v);
      this.moveLease(h.key, prev.lease, 0);
      w.changes.push({ h, v, prev });
      if (wantPrev) prevKvs.push(h.toKeyValue(prev));
    }
    return { header: w.header(), deleted: targets.length, prevKvs };
  }

  private txnIn(w: WriteTxn, req: TxnRequest, plan: TxnPlan): TxnResponse {
    const header = w.header();
    let n = 0;
    const responses: ResponseOp[] = (plan.succeeded ? req.success : req.failure).map((op): ResponseOp => {
      if ("range" in op) return { range: this.rangeIn(w, op.range) };
      if ("put" in op) return { put: this.putIn(w, op.put) };
      if ("deleteRange" in op) return { deleteRange: this.deleteIn(w, toBounds(op.deleteRange), !!op.deleteRange.prevKv) };
      return { txn: this.txnIn(w, op.txn, plan.nested[n++]) };
    });
    return { header, succeeded: plan.succeeded, responses };
  }

  /** A range inside a txn reads at the txn's revision, its earlier writes included (validated in checkPlanned). */
  private rangeIn(w: WriteTxn, req: RangeRequest): RangeResponse {
    const rev = req.revision && req.revision > 0 ? req.revision : w.readRev;
    return rangeIndex(this.index, toBounds(req), req, rev, w.readRev);
  }

  /** etcd compaction: rev must be <= current and above the last compaction; does not advance the revision. */
  compact(req: CompactionRequest): { header: ResponseHeader } {
    const rev = checkUint(req.revision, "compact revision");
    if (rev > this.rev) throw new MvccFutureRevisionError(rev, this.rev);
    if (rev <= this.compactRev) throw new MvccCompactedError(rev, this.compactRev);
    for (const h of this.index.all()) if (h.compact(rev)) this.index.remove(h.key);
    let drop = 0;
    while (drop < this.log.length && this.log[drop].rev <= rev) drop++;
    this.log.splice(0, drop);
    this.compactRev = rev;
    return { header: { revision: this.rev } };
  }

  // ---- leases ----

  leaseGrant(req: LeaseGrantRequest): LeaseGrantResponse {
    let id = checkUint(req.id, "lease id");
    const ttlSeconds = checkUint(req.ttlSeconds, "lease ttl");
    if (id === 0) {
      // Replicas must agree on the id, so it comes from replicated state (a counter), never from randomness.
      while (this.leaseMap.has(this.nextLeaseId)) this.nextLeaseId++;
      id = this.nextLeaseId++;
    } else if (this.leaseMap.has(id)) {
      throw new MvccError("lease-exists", `lease ${id} already exists`);
    }
    this.leaseMap.set(id, { id, ttlSeconds, keys: new Set() });
    return { header: { revision: this.rev }, id, ttlSeconds };
  }

  /** etcd lessor.Revoke: deletes the lease's keys (in key order) in one revision, then the lease. */
  leaseRevoke(req: LeaseRevokeRequest): { header: ResponseHeader } {
    const lease = this.leaseMap.get(req.id);
    if (lease === undefined) throw new MvccError("lease-not-found", `lease ${req.id} not found`);
    const keys = [...lease.keys].sort();
    return this.write((w) => {
      for (const k of keys) this.deleteIn(w, { start: k, end: k, single: true }, false);
      this.leaseMap.delete(req.id);
      return { header: w.header() };
    });
  }

  private moveLease(key: string, from: number, to: number): void {
    if (from === to) return;
    if (from !== 0) this.leaseMap.get(from)?.keys.delete(key);
    if (to !== 0) this.leaseMap.get(to)?.keys.add(key);
  }

  leases(): LeaseInfo[] {
    return [...this.leaseMap.keys()].sort((a, b) => a - b).map((id) => this.leaseInfo(this.leaseMap.get(id) as LeaseState));
  }

  lease(id: number): LeaseInfo | undefined {
    const l = this.leaseMap.get(id);
    return l === undefined ? undefined : this.leaseInfo(l);
  }

  private leaseInfo(l: LeaseState): LeaseInfo {
    const keys = [...l.keys].sort().map((k) => (this.index.get(k) as KeyHistory).bytes);
    return { id: l.id, ttlSeconds: l.ttlSeconds, keys };
  }

  // ---- watch ----

  /**
   * Watches a key range from startRevision (0: the next revision). History is replayed synchronously before this
   * returns, then live revisions are delivered inside apply. A start at or below compactRevision throws
   * MvccCompactedError (code "compacted", with `compactRevision`).
   */
  watch(range: KeyRange, startRevision: number, options: WatchOptions, onEvents: WatchCallback): WatchHandle {
    const bounds = toBounds(range);
    if (typeof startRevision !== "number" || !Number.isSafeInteger(startRevision)) throw new MvccError("invalid", "bad start revision");
    const start = startRevision <= 0 ? this.rev + 1 : startRevision;
    if (start <= this.compactRev) throw new MvccCompactedError(start, this.compactRev);
    const w = this.hub.add(bounds, start, options, onEvents);
    this.hub.catchUp(w, this.log);
    return w;
  }

  // ---- snapshot ----

  snapshot(): Uint8Array {
    const leases = [...this.leaseMap.values()].sort((a, b) => a.id - b.id).map((l) => ({ id: l.id, ttlSeconds: l.ttlSeconds }));
    return encodeSnapshot({
      revision: this.rev,
      compactRevision: this.compactRev,
      nextLeaseId: this.nextLeaseId,
      leases,
      histories: this.index.all(),
    });
  }

  static restore(data: Uint8Array, options?: MvccStoreOptions): MvccStore {
    const store = new MvccStore(options);
    store.restore(data);
    return store;
  }

  /**
   * Replaces the whole state with a snapshot's. Watchers stay: each catches up from its next revision, or ends
   * with MvccCompactedError through its onError if the snapshot no longer holds that history.
   */
  restore(data: Uint8Array): void {
    const s = decodeSnapshot(data);
    const index = new KeyIndex();
    const leaseMap = new Map<number, LeaseState>();
    for (const l of s.leases) leaseMap.set(l.id, { id: l.id, ttlSeconds: l.ttlSeconds, keys: new Set() });
    for (const h of s.histories) {
      index.add(h);
      const lease = h.latest()?.lease ?? 0;
      if (lease === 0) continue;
      const state = leaseMap.get(lease);
      if (state === undefined) throw new MvccError("invalid", `snapshot: key attached to unknown lease ${lease}`);
      state.keys.add(h.key);
    }
    this.rev = s.revision;
    this.compactRev = s.compactRevision;
    this.nextLeaseId = s.nextLeaseId;
    this.index = index;
    this.leaseMap = leaseMap;
    this.log = rebuildLog(s.histories, s.compactRevision);
    for (const w of this.hub.all()) {
      if (w.nextRevision <= this.compactRev) w.fail(new MvccCompactedError(w.nextRevision, this.compactRev));
      else this.hub.catchUp(w, this.log);
    }
  }
}

/** The revision log after compactRev, derived from the histories: every version newer than it, by (mod, sub). */
function rebuildLog(histories: KeyHistory[], compactRev: number): LogRecord[] {
  const changes: Change[] = [];
  for (const h of histories) {
    h.versions.forEach((v, i) => {
      if (v.mod <= compactRev) return;
      const before = i > 0 ? h.versions[i - 1] : undefined;
      changes.push({ h, v, prev: before && !before.tombstone ? before : undefined });
    });
  }
  changes.sort((a, b) => a.v.mod - b.v.mod || a.v.sub - b.v.sub);
  const log: LogRecord[] = [];
  for (const c of changes) {
    const last = log[log.length - 1];
    if (last !== undefined && last.rev === c.v.mod) last.changes.push(c);
    else log.push({ rev: c.v.mod, changes: [c] });
  }
  return log;
}
