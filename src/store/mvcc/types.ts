// The MVCC key-value state machine's requests and responses, in etcd v3's shapes (etcdserverpb, mvccpb) but as
// plain TypeScript: keys and values are bytes, revisions and lease ids are numbers (2^53 is beyond any cluster's
// lifetime). The etcd gRPC API translates to and from these; the Raft-replicated store proposes the mutating ones
// and applies them through MvccStore on every master.

export interface KeyValue {
  key: Uint8Array;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  /** Writes since creation; 1 on create. */
  version: number;
  /** 0 when no lease is attached. */
  lease: number;
}

export interface ResponseHeader {
  /** The store's revision when the request was served (after it, for writes). */
  revision: number;
}

/**
 * Keys [key, rangeEnd). rangeEnd empty: the single key. rangeEnd "\0" (one zero byte): every key >= key.
 * A prefix p is [p, p with its last byte + 1).
 */
export interface KeyRange {
  key: Uint8Array;
  rangeEnd?: Uint8Array;
}

export type SortOrder = "none" | "ascend" | "descend";
export type SortTarget = "key" | "version" | "create" | "mod" | "value";

export interface RangeRequest extends KeyRange {
  /** 0: no limit. */
  limit?: number;
  /** 0: the current revision. A compacted revision fails with MvccError "compacted"; a future one with "future-revision". */
  revision?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
  sortOrder?: SortOrder;
  sortTarget?: SortTarget;
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  /** More keys matched than the limit returned. */
  more: boolean;
  /** Keys matched in all (before the limit). */
  count: number;
}

export interface PutRequest {
  key: Uint8Array;
  value: Uint8Array;
  /** 0: none. A lease that does not exist fails with MvccError "lease-not-found". */
  lease?: number;
  prevKv?: boolean;
  /** Keep the current value (fails with "key-not-found" if the key does not exist). */
  ignoreValue?: boolean;
  /** Keep the current lease (fails with "key-not-found" if the key does not exist). */
  ignoreLease?: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prevKv?: KeyValue;
}

export interface DeleteRangeRequest extends KeyRange {
  prevKv?: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: number;
  prevKvs: KeyValue[];
}

export type CompareTarget = "version" | "create" | "mod" | "value" | "lease";
export type CompareResult = "equal" | "greater" | "less" | "not-equal";

export interface Compare extends KeyRange {
  target: CompareTarget;
  result: CompareResult;
  /** A number for version, create, mod and lease; bytes for value. */
  value: number | Uint8Array;
}

export type RequestOp =
  | { range: RangeRequest }
  | { put: PutRequest }
  | { deleteRange: DeleteRangeRequest }
  | { txn: TxnRequest };

export type ResponseOp =
  | { range: RangeResponse }
  | { put: PutResponse }
  | { deleteRange: DeleteRangeResponse }
  | { txn: TxnResponse };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: number;
}

export interface LeaseGrantRequest {
  /** 0: the store picks one. */
  id: number;
  ttlSeconds: number;
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  id: number;
  ttlSeconds: number;
}

export interface LeaseRevokeRequest {
  id: number;
}

/**
 * Everything that changes the state machine. These are what a Raft-replicated store proposes; applying one is
 * deterministic on every member. Lease expiry is decided by the leader and arrives as a leaseRevoke.
 */
export type MvccCommand =
  | { put: PutRequest }
  | { deleteRange: DeleteRangeRequest }
  | { txn: TxnRequest }
  | { compact: CompactionRequest }
  | { leaseGrant: LeaseGrantRequest }
  | { leaseRevoke: LeaseRevokeRequest };

export type MvccResult = PutResponse | DeleteRangeResponse | TxnResponse | { header: ResponseHeader } | LeaseGrantResponse;

export type EventType = "put" | "delete";

export interface WatchEvent {
  type: EventType;
  /** For a delete: the key with modRevision = the delete's revision, and empty value. */
  kv: KeyValue;
  prevKv?: KeyValue;
}

export interface LeaseInfo {
  id: number;
  /** Granted TTL in seconds. */
  ttlSeconds: number;
  keys: Uint8Array[];
}

export type MvccErrorCode =
  | "compacted"
  | "future-revision"
  | "lease-not-found"
  | "lease-exists"
  | "key-not-found"
  | "too-many-ops"
  | "duplicate-key"
  | "invalid";

/** Each code maps to the error etcd clients expect (see the etcd API layer). */
export class MvccError extends Error {
  constructor(
    readonly code: MvccErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "MvccError";
  }
}
