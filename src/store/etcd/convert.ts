// Proto messages (as proto-loader decodes them, see proto.ts) to the MVCC types of src/store/mvcc/types.ts and back.
// int64s arrive as decimal strings; toInt refuses anything beyond 2^53 rather than silently rounding a revision or a
// lease id. Outgoing int64s are plain numbers (protobufjs encodes them exactly up to 2^53).

import type {
  Compare,
  CompareResult,
  CompareTarget,
  DeleteRangeRequest,
  DeleteRangeResponse,
  KeyValue,
  PutRequest,
  PutResponse,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  SortOrder,
  SortTarget,
  TxnRequest,
  TxnResponse,
  WatchEvent,
} from "../mvcc/types.js";
import { MvccError } from "../mvcc/types.js";
import type { EtcdBackend } from "./backend.js";
import type {
  Int64,
  PbCompare,
  PbDeleteRangeRequest,
  PbHeader,
  PbKeyValue,
  PbPutRequest,
  PbRangeRequest,
  PbRequestOp,
  PbTxnRequest,
} from "./proto.js";

/** A decoded int64 as a number; MvccError "invalid" when it cannot be represented exactly. */
export function toInt(v: Int64 | undefined | null, field = "value"): number {
  if (v === undefined || v === null || v === "") return 0;
  const n = typeof v === "number" ? v : Number(v);
  if (!Number.isSafeInteger(n)) throw new MvccError("invalid", `${field} ${String(v)} is out of range (beyond 2^53)`);
  return n;
}

export function header(backend: EtcdBackend, revision: number): PbHeader {
  return { cluster_id: backend.clusterId, member_id: backend.memberId, revision, raft_term: backend.raftTerm() };
}

export function kvToPb(kv: KeyValue): PbKeyValue {
  return {
    key: Buffer.from(kv.key),
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: Buffer.from(kv.value),
    lease: kv.lease,
  };
}

const SORT_ORDER: Record<PbRangeRequest["sort_order"], SortOrder> = { None: "none", Ascend: "ascend", Descend: "descend" };
const SORT_TARGET: Record<PbRangeRequest["sort_target"], SortTarget> = {
  Key: "key",
  Version: "version",
  Create: "create",
  Mod: "mod",
  Value: "value",
};

function bytes(b: Uint8Array | undefined | null): Uint8Array {
  return b ? new Uint8Array(b) : new Uint8Array(0);
}

function optionalEnd(b: Uint8Array | undefined | null): Uint8Array | undefined {
  return b && b.length > 0 ? new Uint8Array(b) : undefined;
}

export function rangeFromPb(r: PbRangeRequest): RangeRequest {
  return {
    key: bytes(r.key),
    rangeEnd: optionalEnd(r.range_end),
    limit: toInt(r.limit, "limit"),
    revision: toInt(r.revision, "revision"),
    keysOnly: r.keys_only,
    countOnly: r.count_only,
    sortOrder: SORT_ORDER[r.sort_order] ?? "none",
    sortTarget: SORT_TARGET[r.sort_target] ?? "key",
    minModRevision: toInt(r.min_mod_revision, "min_mod_revision"),
    maxModRevision: toInt(r.max_mod_revision, "max_mod_revision"),
    minCreateRevision: toInt(r.min_create_revision, "min_create_revision"),
    maxCreateRevision: toInt(r.max_create_revision, "max_create_revision"),
  };
}

export function putFromPb(r: PbPutRequest): PutRequest {
  return {
    key: bytes(r.key),
    value: bytes(r.value),
    lease: toInt(r.lease, "lease"),
    prevKv: r.prev_kv,
    ignoreValue: r.ignore_value,
    ignoreLease: r.ignore_lease,
  };
}

export function deleteFromPb(r: PbDeleteRangeRequest): DeleteRangeRequest {
  return { key: bytes(r.key), rangeEnd: optionalEnd(r.range_end), prevKv: r.prev_kv };
}

const COMPARE_RESULT: Record<PbCompare["result"], CompareResult> = { Equal: "equal", Greater: "greater", Less: "less", NotEqual: "not-equal" };
const COMPARE_TARGET: Record<PbCompare["target"], CompareTarget> = {
  Version: "version",
  Create: "create",
  Mod: "mod",
  Value: "value",
  Lease: "lease",
};

function compareFromPb(c: PbCompare): Compare {
  const target = COMPARE_TARGET[c.target] ?? "version";
  const value: number | Uint8Array =
    target === "value"
      ? bytes(c.value)
      : toInt(target === "version" ? c.version : target === "create" ? c.create_revision : target === "mod" ? c.mod_revision : c.lease, "compare");
  return { key: bytes(c.key), rangeEnd: optionalEnd(c.range_end), target, result: COMPARE_RESULT[c.result] ?? "equal", value };
}

function opFromPb(op: PbRequestOp): RequestOp {
  if (op.request === "request_range" && op.request_range) return { range: rangeFromPb(op.request_range) };
  if (op.request === "request_put" && op.request_put) return { put: putFromPb(op.request_put) };
  if (op.request === "request_delete_range" && op.request_delete_range) return { deleteRange: deleteFromPb(op.request_delete_range) };
  if (op.request === "request_txn" && op.request_txn) return { txn: txnFromPb(op.request_txn) };
  throw new MvccError("invalid", "empty request op in txn");
}

export function txnFromPb(t: PbTxnRequest): TxnRequest {
  return { compare: t.compare.map(compareFromPb), success: t.success.map(opFromPb), failure: t.failure.map(opFromPb) };
}

export function rangeToPb(b: EtcdBackend, r: RangeResponse): object {
  return { header: header(b, r.header.revision), kvs: r.kvs.map(kvToPb), more: r.more, count: r.count };
}

export function putToPb(b: EtcdBackend, r: PutResponse): object {
  return { header: header(b, r.header.revision), prev_kv: r.prevKv ? kvToPb(r.prevKv) : null };
}

export function deleteToPb(b: EtcdBackend, r: DeleteRangeResponse): object {
  return { header: header(b, r.header.revision), deleted: r.deleted, prev_kvs: r.prevKvs.map(kvToPb) };
}

function opToPb(b: EtcdBackend, op: ResponseOp): object {
  if ("range" in op) return { response_range: rangeToPb(b, op.range) };
  if ("put" in op) return { response_put: putToPb(b, op.put) };
  if ("deleteRange" in op) return { response_delete_range: deleteToPb(b, op.deleteRange) };
  return { response_txn: txnToPb(b, op.txn) };
}

export function txnToPb(b: EtcdBackend, r: TxnResponse): object {
  return { header: header(b, r.header.revision), succeeded: r.succeeded, responses: r.responses.map((op) => opToPb(b, op)) };
}

export function eventToPb(e: WatchEvent): object {
  return { type: e.type === "put" ? "Put" : "Delete", kv: kvToPb(e.kv), prev_kv: e.prevKv ? kvToPb(e.prevKv) : null };
}
