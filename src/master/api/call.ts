// The server's edge: authenticate each call, authorize it, time it, and turn thrown ApiErrors into gRPC statuses.
import type {
  sendUnaryData,
  ServerUnaryCall,
  ServerWritableStream,
  handleServerStreamingCall,
  handleUnaryCall,
} from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import type { Credentials, Principal } from "../auth/tokens.js";
import { permissionDenied, toServiceError, unauthenticated } from "../errors.js";
import type { MasterMetrics } from "../metrics.js";
import type { Logger } from "../../common/logger.js";

export type Role = Principal["role"];

export interface CallContext {
  principal: Principal;
  /** Aborted when the client cancels (streams) or the call ends. */
  signal: AbortSignal;
}

export interface EdgeDeps {
  credentials: Credentials;
  metrics: MasterMetrics;
  log: Logger;
}

function bearer(call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>): string {
  const value = call.metadata.get("authorization")[0];
  const text = typeof value === "string" ? value : (value?.toString() ?? "");
  return text.startsWith("Bearer ") ? text.slice(7).trim() : text.trim();
}

async function authorize(deps: EdgeDeps, token: string, allowed: Role[]): Promise<Principal> {
  if (!token) throw unauthenticated("no credentials: send 'authorization: Bearer <token>' (see flotilla.yaml)");
  const principal = await deps.credentials.authenticate(token);
  if (!principal) throw unauthenticated("the token is not valid (wrong, expired or revoked)");
  if (!allowed.includes(principal.role)) throw permissionDenied(`a ${principal.role} may not call this method`);
  return principal;
}

export function unary<Req, Res>(
  deps: EdgeDeps,
  service: string,
  method: string,
  allowed: Role[],
  handler: (request: Req, ctx: CallContext) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const end = deps.metrics.apiLatency.startTimer({ service, method });
    const controller = new AbortController();
    call.on("cancelled", () => controller.abort());
    authorize(deps, bearer(call), allowed)
      .then((principal) => handler(call.request, { principal, signal: controller.signal }))
      .then(
        (response) => {
          deps.metrics.apiRequests.inc({ service, method, code: status[status.OK] });
          callback(null, response);
        },
        (e: unknown) => {
          const error = toServiceError(e);
          deps.metrics.apiRequests.inc({ service, method, code: status[error.code ?? status.INTERNAL] });
          if (error.code === status.INTERNAL) deps.log.error({ err: e, method }, "internal error");
          callback(error);
        },
      )
      .finally(() => end());
  };
}

export function serverStream<Req, Res>(
  deps: EdgeDeps,
  service: string,
  method: string,
  allowed: Role[],
  handler: (request: Req, call: ServerWritableStream<Req, Res>, ctx: CallContext) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call: ServerWritableStream<Req, Res>) => {
    const end = deps.metrics.apiLatency.startTimer({ service, method });
    const controller = new AbortController();
    call.on("cancelled", () => controller.abort());
    call.on("close", () => controller.abort());
    authorize(deps, bearer(call), allowed)
      .then((principal) => {
        end();
        return handler(call.request, call, { principal, signal: controller.signal });
      })
      .then(
        () => {
          deps.metrics.apiRequests.inc({ service, method, code: status[status.OK] });
          if (!call.writableEnded) call.end();
        },
        (e: unknown) => {
          const error = toServiceError(e);
          deps.metrics.apiRequests.inc({ service, method, code: status[error.code ?? status.INTERNAL] });
          if (error.code === status.INTERNAL) deps.log.error({ err: e, method }, "internal error");
          if (!controller.signal.aborted) call.destroy(Object.assign(new Error(error.details), error));
        },
      );
  };
}
