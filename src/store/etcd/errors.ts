// The one place where store errors become the gRPC statuses etcd clients expect. Clients match on the message text
// (etcd's rpctypes strings: clientv3 and the etcd3 npm library turn "etcdserver: requested lease not found" into a
// typed lease error, etcdctl prints the message), so the messages are etcd 3.4's exactly.

import { Metadata, status as Status, type ServiceError } from "@grpc/grpc-js";
import { MvccError, type MvccErrorCode } from "../mvcc/types.js";
import { RaftError } from "../../raft/types.js";
import type { MalformedRequest } from "./proto.js";

/** The store has no leader to serve a linearizable request (an election is under way, or this member is cut off). */
export class NoLeaderError extends Error {
  constructor(message = "no leader") {
    super(message);
    this.name = "NoLeaderError";
  }
}

/** An operation this store does not offer (yet); reported as UNIMPLEMENTED with the message. */
export class UnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsupportedError";
  }
}

/** A member id that is not in the cluster (etcd's ErrMemberNotFound). */
export class MemberNotFoundError extends Error {
  constructor(id: string) {
    super(`member ${id} not found`);
    this.name = "MemberNotFoundError";
  }
}

/** A learner that has not caught up with the leader (etcd's ErrLearnerNotReady). */
export class LearnerNotReadyError extends Error {
  constructor() {
    super("can only promote a learner member which is in sync with leader");
    this.name = "LearnerNotReadyError";
  }
}

/** A request larger than the store accepts. */
export class RequestTooLargeError extends Error {
  constructor() {
    super("request is too large");
    this.name = "RequestTooLargeError";
  }
}

interface Mapped {
  code: Status;
  details: string;
}

const MVCC: Record<MvccErrorCode, Mapped | undefined> = {
  compacted: { code: Status.OUT_OF_RANGE, details: "etcdserver: mvcc: required revision has been compacted" },
  "future-revision": { code: Status.OUT_OF_RANGE, details: "etcdserver: mvcc: required revision is a future revision" },
  "lease-not-found": { code: Status.NOT_FOUND, details: "etcdserver: requested lease not found" },
  "lease-exists": { code: Status.FAILED_PRECONDITION, details: "etcdserver: lease already exists" },
  "key-not-found": { code: Status.INVALID_ARGUMENT, details: "etcdserver: key not found" },
  "too-many-ops": { code: Status.INVALID_ARGUMENT, details: "etcdserver: too many operations in txn request" },
  "duplicate-key": { code: Status.INVALID_ARGUMENT, details: "etcdserver: duplicate key given in txn request" },
  // "invalid" carries its own message (e.g. an empty key); etcd has no single string for it.
  invalid: undefined,
};

export const EMPTY_KEY: Mapped = { code: Status.INVALID_ARGUMENT, details: "etcdserver: key is not provided" };
const NO_LEADER: Mapped = { code: Status.UNAVAILABLE, details: "etcdserver: no leader" };
const TOO_LARGE: Mapped = { code: Status.INVALID_ARGUMENT, details: "etcdserver: request is too large" };

function mapError(e: unknown): Mapped {
  if (e instanceof MvccError) return MVCC[e.code] ?? { code: Status.INVALID_ARGUMENT, details: `etcdserver: ${e.message}` };
  if (e instanceof NoLeaderError) return NO_LEADER;
  if (e instanceof RaftError) {
    if (e.code === "no-leader") return NO_LEADER;
    if (e.code === "compacted") return MVCC.compacted ?? NO_LEADER;
    // A proposal dropped by a leader change or a transfer: etcd reports these as retryable.
    if (e.code === "proposal-dropped" || e.code === "transfer-in-progress") return { code: Status.UNAVAILABLE, details: "etcdserver: leader changed" };
    // A request with no answer in time: etcd's own string, so clients recognise it as a timeout.
    if (e.code === "unavailable") return { code: Status.UNAVAILABLE, details: "etcdserver: request timed out" };
    return { code: Status.UNAVAILABLE, details: `etcdserver: ${e.message}` };
  }
  if (e instanceof RequestTooLargeError) return TOO_LARGE;
  if (e instanceof MemberNotFoundError) return { code: Status.NOT_FOUND, details: "etcdserver: member not found" };
  if (e instanceof LearnerNotReadyError) return { code: Status.FAILED_PRECONDITION, details: `etcdserver: ${e.message}` };
  if (e instanceof UnsupportedError) return { code: Status.UNIMPLEMENTED, details: `etcdserver: ${e.message}` };
  if (isServiceError(e)) return { code: e.code, details: e.details };
  const message = e instanceof Error ? e.message : String(e);
  return { code: Status.INTERNAL, details: `etcdserver: ${message}` };
}

function isServiceError(e: unknown): e is ServiceError {
  return e instanceof Error && typeof (e as Partial<ServiceError>).code === "number" && typeof (e as Partial<ServiceError>).details === "string";
}

/** The status a gRPC handler sends for a thrown error. */
export function toGrpcError(e: unknown): Partial<ServiceError> {
  const m = mapError(e);
  return { code: m.code, details: m.details, message: m.details, metadata: new Metadata() };
}

/** The status for a request body that does not decode (etcd's gRPC would say INTERNAL; it is the client's fault). */
export function malformedError(m: MalformedRequest): Partial<ServiceError> {
  return grpcError(Status.INVALID_ARGUMENT, `etcdserver: malformed request to ${m.method}: ${m.reason}`);
}

/** An error for a request the API layer itself rejects (bad arguments). */
export function grpcError(code: Status, details: string): Partial<ServiceError> {
  return { code, details, message: details, metadata: new Metadata() };
}

export function isCompacted(e: unknown): boolean {
  return (e instanceof MvccError && e.code === "compacted") || (e instanceof RaftError && e.code === "compacted");
}
