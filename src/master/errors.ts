// Typed API errors. Anything the master rejects is one of these; they become gRPC statuses in one place, the
// server's edge (toServiceError), and anything else becomes INTERNAL.
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { type FieldError, formatFieldErrors } from "../api/validation.js";
import { RaftError } from "../raft/types.js";

export class ApiError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const invalid = (kind: string, name: string, errors: FieldError[]) =>
  new ApiError(status.INVALID_ARGUMENT, `${kind} "${name || "(unnamed)"}" is invalid: ${formatFieldErrors(errors)}`);
export const invalidField = (field: string, rule: string) => new ApiError(status.INVALID_ARGUMENT, `${field}: ${rule}`);
export const notFound = (kind: string, namespace: string, name: string) =>
  new ApiError(status.NOT_FOUND, `${kind.toLowerCase()} "${name}" not found${namespace ? ` in namespace "${namespace}"` : ""}`);
export const alreadyExists = (kind: string, namespace: string, name: string) =>
  new ApiError(status.ALREADY_EXISTS, `${kind.toLowerCase()} "${name}" already exists${namespace ? ` in namespace "${namespace}"` : ""}`);
export const conflict = (kind: string, name: string, expected: string, actual: number) =>
  new ApiError(
    status.ABORTED,
    `${kind.toLowerCase()} "${name}" was modified: resourceVersion ${expected} is stale (now ${actual}); get it again and retry`,
  );
export const unauthenticated = (message: string) => new ApiError(status.UNAUTHENTICATED, message);
export const permissionDenied = (message: string) => new ApiError(status.PERMISSION_DENIED, message);

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

export function toServiceError(e: unknown): Partial<ServiceError> {
  if (isApiError(e)) return { code: e.code, details: e.message, metadata: new Metadata() };
  // The replicated store without a leader, or a request whose outcome is unknown: clients retry elsewhere.
  if (e instanceof RaftError && ["no-leader", "unavailable", "transfer-in-progress", "stopped", "proposal-dropped", "storage-failed"].includes(e.code)) {
    return { code: status.UNAVAILABLE, details: `the cluster store is unavailable: ${e.message}`, metadata: new Metadata() };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { code: status.INTERNAL, details: `internal error: ${message}`, metadata: new Metadata() };
}
