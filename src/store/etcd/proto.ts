// Loads etcd's v3 protos (etcdserverpb, mvccpb) from the etcd3 npm package at run time, and declares the narrow
// shapes of the decoded messages this API layer reads. Decoding options: int64/uint64 arrive as decimal strings
// (longs: String, so nothing is rounded before convert.ts checks it fits in 2^53), bytes as Buffers, enums as their
// names, unset fields as their defaults, and each oneof as a virtual field naming the member that is set.

import { createRequire } from "node:module";
import path from "node:path";
import { loadPackageDefinition, type ServiceDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

/** An int64 as proto-loader decodes it (a decimal string), or as we encode it (a number or a decimal string). */
export type Int64 = string | number;

export interface PbKeyValue {
  key: Uint8Array;
  create_revision: Int64;
  mod_revision: Int64;
  version: Int64;
  value: Uint8Array;
  lease: Int64;
}

export interface PbHeader {
  cluster_id: string;
  member_id: string;
  revision: Int64;
  raft_term: Int64;
}

export interface PbRangeRequest {
  key: Buffer;
  range_end: Buffer;
  limit: string;
  revision: string;
  sort_order: "None" | "Ascend" | "Descend";
  sort_target: "Key" | "Version" | "Create" | "Mod" | "Value";
  serializable: boolean;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: string;
  max_mod_revision: string;
  min_create_revision: string;
  max_create_revision: string;
}

export interface PbPutRequest {
  key: Buffer;
  value: Buffer;
  lease: string;
  prev_kv: boolean;
  ignore_value: boolean;
  ignore_lease: boolean;
}

export interface PbDeleteRangeRequest {
  key: Buffer;
  range_end: Buffer;
  prev_kv: boolean;
}

export interface PbRequestOp {
  request?: "request_range" | "request_put" | "request_delete_range" | "request_txn";
  request_range?: PbRangeRequest | null;
  request_put?: PbPutRequest | null;
  request_delete_range?: PbDeleteRangeRequest | null;
  request_txn?: PbTxnRequest | null;
}

export interface PbCompare {
  result: "Equal" | "Greater" | "Less" | "NotEqual";
  target: "Version" | "Create" | "Mod" | "Value" | "Lease";
  key: Buffer;
  range_end: Buffer;
  target_union?: "version" | "create_revision" | "mod_revision" | "value" | "lease";
  version?: string;
  create_revision?: string;
  mod_revision?: string;
  value?: Buffer;
  lease?: string;
}

export interface PbTxnRequest {
  compare: PbCompare[];
  success: PbRequestOp[];
  failure: PbRequestOp[];
}

export interface PbCompactionRequest {
  revision: string;
  physical: boolean;
}

export interface PbWatchCreateRequest {
  key: Buffer;
  range_end: Buffer;
  start_revision: string;
  progress_notify: boolean;
  filters: ("Noput" | "Nodelete")[];
  prev_kv: boolean;
  watch_id: string;
  fragment: boolean;
}

export interface PbWatchRequest {
  request_union?: "create_request" | "cancel_request" | "progress_request";
  create_request?: PbWatchCreateRequest | null;
  cancel_request?: { watch_id: string } | null;
  progress_request?: object | null;
}

export interface PbLeaseGrantRequest {
  TTL: string;
  ID: string;
}

export interface PbLeaseIdRequest {
  ID: string;
}

export interface PbLeaseTimeToLiveRequest {
  ID: string;
  keys: boolean;
}

export interface PbMemberAddRequest {
  peerURLs: string[];
  isLearner: boolean;
}

export interface PbMemberIdRequest {
  ID: string;
}

export interface PbAlarmRequest {
  action: "Get" | "Activate" | "Deactivate";
  memberID: string;
  alarm: string;
}

const SERVICES = ["KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth"] as const;
export type EtcdServiceName = (typeof SERVICES)[number];

interface EtcdPackage {
  etcdserverpb: Record<EtcdServiceName, { service: ServiceDefinition }>;
}

let loaded: EtcdPackage | undefined;

/** The directory of the etcd3 package's protos (rpc.proto imports ./kv.proto and ./auth.proto beside it). */
export function etcdProtoDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve("etcd3/package.json")), "proto");
}

/** The etcdserverpb service definitions, loaded once. */
export function etcdServices(): EtcdPackage["etcdserverpb"] {
  if (!loaded) {
    const dir = etcdProtoDir();
    const def = loadSync(path.join(dir, "rpc.proto"), {
      keepCase: true,
      longs: String,
      enums: String,
      bytes: Buffer,
      defaults: true,
      oneofs: true,
      includeDirs: [dir],
    });
    // The one cast: loadPackageDefinition is untyped (GrpcObject); rpc.proto declares these services.
    loaded = loadPackageDefinition(def) as unknown as EtcdPackage;
    for (const name of SERVICES) loaded.etcdserverpb[name].service = tolerant(loaded.etcdserverpb[name].service);
  }
  return loaded.etcdserverpb;
}

/**
 * A request body that does not decode as its message type (truncated, a bad wire type, nested deeper than
 * protobufjs's limit of 100). grpc-js answers a throwing deserializer with INTERNAL, which reads as a server fault;
 * instead the handler gets this value and refuses it with INVALID_ARGUMENT (server.ts, and each stream's handler).
 */
export class MalformedRequest {
  constructor(
    readonly method: string,
    readonly reason: string,
  ) {}
}

function tolerant(service: ServiceDefinition): ServiceDefinition {
  const methods = Object.entries(service).map(([name, m]) => {
    const decode = m.requestDeserialize;
    const requestDeserialize = (b: Buffer): unknown => {
      try {
        return decode(b);
      } catch (e) {
        return new MalformedRequest(m.path, e instanceof Error ? e.message : String(e));
      }
    };
    return [name, { ...m, requestDeserialize }];
  });
  return Object.fromEntries(methods) as ServiceDefinition;
}
