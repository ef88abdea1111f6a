// etcdserverpb.Maintenance: Status and the Snapshot stream; Alarm answers "no alarms" to a GET (etcdctl's
// `alarm list`, and clients that check alarms before writing). Defragment, Hash, HashKV, MoveLeader and Downgrade
// are UNIMPLEMENTED with a message saying so. The snapshot is the backend's bytes followed, as etcd sends it, by
// their sha256 (etcdctl checks that trailer), zero-padded to 512 bytes as bolt files are; it is buffered so remaining_bytes is exact.

import { createHash } from "node:crypto";
import {
  status as Status,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { EtcdBackend } from "./backend.js";
import { header } from "./convert.js";
import { grpcError, toGrpcError } from "./errors.js";
import { reply } from "./kv-service.js";
import type { PbAlarmRequest } from "./proto.js";

/** Snapshot chunk size: etcd sends 32 KiB blobs. */
const CHUNK = 32 * 1024;

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  // etcdctl (3.4) accepts a snapshot only if its size is a multiple of 512 plus the 32-byte digest, as bolt files
  // are; so the bytes are zero-padded to 512 first (a backend's snapshot format must tolerate trailing zeros).
  const raw = Buffer.concat(parts);
  const data = Buffer.concat([raw, Buffer.alloc((512 - (raw.length % 512)) % 512)]);
  return Buffer.concat([data, createHash("sha256").update(data).digest()]);
}

async function sendSnapshot(backend: EtcdBackend, call: ServerWritableStream<object, object>): Promise<void> {
  const revision = backend.currentRevision();
  const blob = await collect(backend.snapshot());
  for (let off = 0; off < blob.length && !call.cancelled; off += CHUNK) {
    const part = blob.subarray(off, off + CHUNK);
    const ok = call.write({ header: header(backend, revision), remaining_bytes: blob.length - off - part.length, blob: part });
    if (!ok) await new Promise((resolve) => call.once("drain", resolve));
  }
  call.end();
}

function unimplemented(name: string): handleUnaryCall<object, object> {
  return (_call, cb) => cb(grpcError(Status.UNIMPLEMENTED, `etcdserver: ${name} is not supported by Flotilla`), null);
}

export function maintenanceService(backend: EtcdBackend): UntypedServiceImplementation {
  const Status_: handleUnaryCall<object, object> = (_call, cb) =>
    reply(cb, async () => {
      const s = await backend.status();
      return {
        header: header(backend, backend.currentRevision()),
        version: s.version,
        dbSize: s.dbSize,
        leader: s.leader,
        raftIndex: s.raftIndex,
        raftTerm: s.raftTerm,
        raftAppliedIndex: s.raftAppliedIndex,
        errors: [],
        dbSizeInUse: s.dbSize,
        isLearner: s.isLearner,
      };
    });
  const Snapshot: handleServerStreamingCall<object, object> = (call) => {
    sendSnapshot(backend, call).catch((e: unknown) => call.emit("error", toGrpcError(e)));
  };
  const Alarm: handleUnaryCall<PbAlarmRequest, object> = (call, cb) => {
    if (call.request.action !== "Get") return cb(grpcError(Status.UNIMPLEMENTED, "etcdserver: raising or clearing alarms is not supported by Flotilla"), null);
    cb(null, { header: header(backend, backend.currentRevision()), alarms: [] });
  };
  return {
    Status: Status_,
    Snapshot,
    Alarm,
    Defragment: unimplemented("Defragment"),
    Hash: unimplemented("Hash"),
    HashKV: unimplemented("HashKV"),
    MoveLeader: unimplemented("MoveLeader"),
    Downgrade: unimplemented("Downgrade"),
  };
}
