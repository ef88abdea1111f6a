// etcdserverpb.Lease: grant, revoke, the keep-alive stream, time-to-live and the lease list. As etcd 3.4 does, a
// keep-alive for a lease that is gone answers TTL 0 (clients take that as expired) instead of failing the stream,
// and time-to-live of a missing lease answers TTL -1.

import type { handleUnaryCall, ServerDuplexStream, UntypedServiceImplementation } from "@grpc/grpc-js";
import { MvccError } from "../mvcc/types.js";
import type { EtcdBackend } from "./backend.js";
import { header, toInt } from "./convert.js";
import { malformedError, toGrpcError } from "./errors.js";
import { reply } from "./kv-service.js";
import { MalformedRequest, type PbLeaseGrantRequest, type PbLeaseIdRequest, type PbLeaseTimeToLiveRequest } from "./proto.js";

function leaseGone(e: unknown): boolean {
  return e instanceof MvccError && e.code === "lease-not-found";
}

function keepAliveStream(backend: EtcdBackend, stream: ServerDuplexStream<PbLeaseIdRequest, object>): void {
  let open = true;
  const stop = (): void => {
    open = false;
  };
  stream.on("end", () => {
    stop();
    stream.end();
  });
  stream.on("error", stop);
  stream.on("cancelled", stop);
  stream.on("data", (req: PbLeaseIdRequest | MalformedRequest) => {
    if (req instanceof MalformedRequest) {
      stop();
      stream.emit("error", malformedError(req));
      return;
    }
    let id: number;
    try {
      id = toInt(req.ID, "ID");
    } catch (e) {
      stop();
      stream.emit("error", toGrpcError(e));
      return;
    }
    backend.leaseKeepAlive(id).then(
      (r) => open && stream.write({ header: header(backend, backend.currentRevision()), ID: id, TTL: r.ttlSeconds }),
      (e: unknown) => {
        if (!open) return;
        if (leaseGone(e)) stream.write({ header: header(backend, backend.currentRevision()), ID: id, TTL: 0 });
        else {
          stop();
          stream.emit("error", toGrpcError(e));
        }
      },
    );
  });
}

export function leaseService(backend: EtcdBackend): UntypedServiceImplementation {
  const LeaseGrant: handleUnaryCall<PbLeaseGrantRequest, object> = (call, cb) =>
    reply(cb, async () => {
      const r = await backend.leaseGrant({ id: toInt(call.request.ID, "ID"), ttlSeconds: toInt(call.request.TTL, "TTL") });
      return { header: header(backend, r.header.revision), ID: r.id, TTL: r.ttlSeconds, error: "" };
    });
  const LeaseRevoke: handleUnaryCall<PbLeaseIdRequest, object> = (call, cb) =>
    reply(cb, async () => {
      const r = await backend.leaseRevoke({ id: toInt(call.request.ID, "ID") });
      return { header: header(backend, r.header.revision) };
    });
  const LeaseTimeToLive: handleUnaryCall<PbLeaseTimeToLiveRequest, object> = (call, cb) =>
    reply(cb, async () => {
      const id = toInt(call.request.ID, "ID");
      const h = header(backend, backend.currentRevision());
      try {
        const r = await backend.leaseTimeToLive(id, call.request.keys);
        return { header: h, ID: r.id, TTL: r.ttlSeconds, grantedTTL: r.grantedTtlSeconds, keys: r.keys.map((k) => Buffer.from(k)) };
      } catch (e) {
        if (leaseGone(e)) return { header: h, ID: id, TTL: -1, grantedTTL: 0, keys: [] };
        throw e;
      }
    });
  const LeaseLeases: handleUnaryCall<object, object> = (_call, cb) =>
    reply(cb, async () => {
      const ids = await backend.leaseList();
      return { header: header(backend, backend.currentRevision()), leases: ids.map((ID) => ({ ID })) };
    });
  return {
    LeaseGrant,
    LeaseRevoke,
    LeaseKeepAlive: (stream: ServerDuplexStream<PbLeaseIdRequest, object>) => keepAliveStream(backend, stream),
    LeaseTimeToLive,
    LeaseLeases,
  };
}
