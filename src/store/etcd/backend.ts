// The storage side of the etcd v3 API: what the gRPC services (kv-, watch-, lease-, cluster-, maintenance-service)
// need from a store. It speaks the MVCC types of src/store/mvcc/types.ts, so the Raft-replicated store implements it
// by proposing commands and applying them through the MVCC state machine; memory-backend.ts implements it in-process
// for tests. Errors: throw MvccError (src/store/mvcc/types.ts), NoLeaderError or UnsupportedError (./errors.ts), or a
// RaftError with code "no-leader"; errors.ts maps them to the status codes and messages etcd clients expect.

import type {
  CompactionRequest,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyRange,
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseRevokeRequest,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  ResponseHeader,
  TxnRequest,
  TxnResponse,
  WatchEvent,
} from "../mvcc/types.js";
import { MvccError } from "../mvcc/types.js";

export interface Member {
  /** A uint64, as a decimal string (ids are random 64-bit numbers in etcd, beyond 2^53). */
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface MemberStatus {
  /** The cluster protocol version etcdctl prints, e.g. "3.4.0". */
  version: string;
  dbSize: number;
  /** The leader's member id (decimal uint64); "0" when there is none. */
  leader: string;
  raftIndex: number;
  raftTerm: number;
  raftAppliedIndex: number;
  isLearner: boolean;
}

export interface LeaseTimeToLive {
  id: number;
  /** Remaining seconds; -1 when the lease does not exist (the service reports that, the backend throws). */
  ttlSeconds: number;
  grantedTtlSeconds: number;
  keys: Uint8Array[];
}

export interface WatchOptions {
  prevKv: boolean;
}

/** Called with the events of one or more revisions in order; `revision` is the store's revision after them. */
export type WatchListener = (events: WatchEvent[], revision: number) => void;

export interface EtcdBackend {
  /** Decimal uint64s, carried in every response header. */
  readonly clusterId: string;
  readonly memberId: string;

  /** Linearizable unless `serializable` (then served from local state, possibly stale). */
  range(req: RangeRequest, opts: { serializable: boolean }): Promise<RangeResponse>;
  put(req: PutRequest): Promise<PutResponse>;
  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse>;
  txn(req: TxnRequest): Promise<TxnResponse>;
  compact(req: CompactionRequest): Promise<{ header: ResponseHeader }>;

  /**
   * Events on `range` from `startRevision` (inclusive; history first, then live). A start at or before the compacted
   * revision reports WatchCompactedError through onError (synchronously or later) and delivers nothing more.
   */
  watch(range: KeyRange, startRevision: number, opts: WatchOptions, onEvents: WatchListener, onError: (e: Error) => void): { cancel(): void };
  currentRevision(): number;
  /** The Raft term for response headers; 0 for a store without one. */
  raftTerm(): number;

  leaseGrant(req: LeaseGrantRequest): Promise<LeaseGrantResponse>;
  leaseRevoke(req: LeaseRevokeRequest): Promise<{ header: ResponseHeader }>;
  /** Refreshes the lease to its granted TTL; MvccError "lease-not-found" when it is gone. */
  leaseKeepAlive(id: number): Promise<{ ttlSeconds: number }>;
  /** MvccError "lease-not-found" when it is gone. */
  leaseTimeToLive(id: number, keys: boolean): Promise<LeaseTimeToLive>;
  leaseList(): Promise<number[]>;

  members(): Promise<Member[]>;
  /** May reject with UnsupportedError until membership changes go through Raft. */
  memberAdd(peerURLs: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }>;
  memberRemove(id: string): Promise<Member[]>;
  memberPromote(id: string): Promise<Member[]>;

  status(): Promise<MemberStatus>;
  /** The store's state as opaque bytes (Maintenance.Snapshot streams them, then etcd's trailing sha256). */
  snapshot(): AsyncIterable<Uint8Array>;
}

/** A watch whose start revision was compacted away: etcd cancels it with compact_revision set. */
export class WatchCompactedError extends MvccError {
  constructor(readonly compactRevision: number) {
    super("compacted", `required revision has been compacted (compacted at ${compactRevision})`);
    this.name = "WatchCompactedError";
  }
}
