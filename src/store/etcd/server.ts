// Serves etcd's v3 gRPC API (etcdserverpb KV, Watch, Lease, Cluster, Maintenance) over an EtcdBackend, so etcdctl
// and etcd client libraries work against a Flotilla master unchanged. Auth is the caller's: the master's client port
// adds a login (src/master/etcd-auth.ts) through `guard`; the opt-in --etcd-listen port has none.

import type {
  handleServerStreamingCall,
  handleUnaryCall,
  Server,
  ServiceDefinition,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { EtcdBackend } from "./backend.js";
import { clusterService } from "./cluster-service.js";
import { malformedError } from "./errors.js";
import { kvService } from "./kv-service.js";
import { leaseService } from "./lease-service.js";
import { maintenanceService } from "./maintenance-service.js";
import { etcdServices, MalformedRequest } from "./proto.js";
import { watchService, type WatchServiceOptions } from "./watch-service.js";

export interface EtcdServiceOptions extends WatchServiceOptions {
  /** Wraps every service's handlers, e.g. to require a login (the master's client port does). */
  guard?: (service: ServiceDefinition, impl: UntypedServiceImplementation) => UntypedServiceImplementation;
}

export function addEtcdServices(server: Server, backend: EtcdBackend, opts: EtcdServiceOptions = {}): void {
  const pb = etcdServices();
  const guard = opts.guard ?? ((_: ServiceDefinition, impl: UntypedServiceImplementation) => impl);
  const add = (service: ServiceDefinition, impl: UntypedServiceImplementation) =>
    server.addService(service, guard(service, refuseMalformed(service, impl)));
  add(pb.KV.service, kvService(backend));
  add(pb.Watch.service, watchService(backend, opts));
  add(pb.Lease.service, leaseService(backend));
  add(pb.Cluster.service, clusterService(backend));
  add(pb.Maintenance.service, maintenanceService(backend));
}

/**
 * Unary and server-streaming handlers get their one request before they run, so a body that did not decode
 * (MalformedRequest) is refused here; the bidi streams (Watch, LeaseKeepAlive) check each message themselves.
 */
function refuseMalformed(service: ServiceDefinition, impl: UntypedServiceImplementation): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(impl)) {
    const method = service[name];
    if (!method || method.requestStream) out[name] = handler;
    else if (method.responseStream) {
      const streaming = handler as handleServerStreamingCall<unknown, unknown>;
      out[name] = ((call) => {
        if (call.request instanceof MalformedRequest) call.emit("error", malformedError(call.request));
        else streaming(call);
      }) satisfies handleServerStreamingCall<unknown, unknown>;
    } else {
      const unary = handler as handleUnaryCall<unknown, unknown>;
      out[name] = ((call, cb) => {
        if (call.request instanceof MalformedRequest) cb(malformedError(call.request), null);
        else unary(call, cb);
      }) satisfies handleUnaryCall<unknown, unknown>;
    }
  }
  return out;
}
