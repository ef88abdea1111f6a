// Serves etcd's v3 gRPC API (etcdserverpb KV, Watch, Lease, Cluster, Maintenance) over an EtcdBackend, so etcdctl
// and etcd client libraries work against a Flotilla master unchanged. Auth is not served (clients that do not log
// in never call it).

import type { Server } from "@grpc/grpc-js";
import type { EtcdBackend } from "./backend.js";
import { clusterService } from "./cluster-service.js";
import { kvService } from "./kv-service.js";
import { leaseService } from "./lease-service.js";
import { maintenanceService } from "./maintenance-service.js";
import { etcdServices } from "./proto.js";
import { watchService, type WatchServiceOptions } from "./watch-service.js";

export type EtcdServiceOptions = WatchServiceOptions;

export function addEtcdServices(server: Server, backend: EtcdBackend, opts: EtcdServiceOptions = {}): void {
  const pb = etcdServices();
  server.addService(pb.KV.service, kvService(backend));
  server.addService(pb.Watch.service, watchService(backend, opts));
  server.addService(pb.Lease.service, leaseService(backend));
  server.addService(pb.Cluster.service, clusterService(backend));
  server.addService(pb.Maintenance.service, maintenanceService(backend));
}
