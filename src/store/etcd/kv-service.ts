// etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact, each a thin translation over the backend. Requests are
// checked here for what etcd rejects before it reaches its store (an empty key), so every backend behaves alike.

import type { handleUnaryCall, sendUnaryData, UntypedServiceImplementation } from "@grpc/grpc-js";
import type { EtcdBackend } from "./backend.js";
import { deleteFromPb, deleteToPb, header, putFromPb, putToPb, rangeFromPb, rangeToPb, toInt, txnFromPb, txnToPb } from "./convert.js";
import { EMPTY_KEY, grpcError, toGrpcError } from "./errors.js";
import type { PbCompactionRequest, PbDeleteRangeRequest, PbPutRequest, PbRangeRequest, PbTxnRequest } from "./proto.js";

/** Runs a handler body and reports its result or its error (mapped by errors.ts) to the callback. */
export function reply<T>(callback: sendUnaryData<T>, body: () => Promise<T>): void {
  let p: Promise<T>;
  try {
    p = body();
  } catch (e) {
    callback(toGrpcError(e), null);
    return;
  }
  p.then(
    (v) => callback(null, v),
    (e: unknown) => callback(toGrpcError(e), null),
  );
}

function emptyKey(key: Uint8Array): boolean {
  return key.length === 0;
}

export function kvService(backend: EtcdBackend): UntypedServiceImplementation {
  const Range: handleUnaryCall<PbRangeRequest, object> = (call, cb) => {
    if (emptyKey(call.request.key)) return cb(grpcError(EMPTY_KEY.code, EMPTY_KEY.details), null);
    reply(cb, async () => rangeToPb(backend, await backend.range(rangeFromPb(call.request), { serializable: call.request.serializable })));
  };
  const Put: handleUnaryCall<PbPutRequest, object> = (call, cb) => {
    if (emptyKey(call.request.key)) return cb(grpcError(EMPTY_KEY.code, EMPTY_KEY.details), null);
    reply(cb, async () => putToPb(backend, await backend.put(putFromPb(call.request))));
  };
  const DeleteRange: handleUnaryCall<PbDeleteRangeRequest, object> = (call, cb) => {
    if (emptyKey(call.request.key)) return cb(grpcError(EMPTY_KEY.code, EMPTY_KEY.details), null);
    reply(cb, async () => deleteToPb(backend, await backend.deleteRange(deleteFromPb(call.request))));
  };
  const Txn: handleUnaryCall<PbTxnRequest, object> = (call, cb) => {
    reply(cb, async () => txnToPb(backend, await backend.txn(txnFromPb(call.request))));
  };
  const Compact: handleUnaryCall<PbCompactionRequest, object> = (call, cb) => {
    reply(cb, async () => {
      const res = await backend.compact({ revision: toInt(call.request.revision, "revision") });
      return { header: header(backend, res.header.revision) };
    });
  };
  return { Range, Put, DeleteRange, Txn, Compact };
}
