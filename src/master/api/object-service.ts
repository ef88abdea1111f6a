// The six calls every kind has (create, apply, get, list, delete, watch), built once over a Registry.
import type { ServerWritableStream } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import type { DeleteRequest, DeleteResponse, GetRequest, ListRequest, WatchRequest } from "../../gen/flotilla/v1/meta.js";
import { CompactedError } from "../../store/index.js";
import { ApiError, invalidField, permissionDenied } from "../errors.js";
import type { ApiObject } from "../kinds.js";
import type { Registry, WatchEventType } from "../registry.js";
import type { CallContext } from "./call.js";

export interface ObjectHandlers<T extends ApiObject> {
  create(obj: T): Promise<T>;
  apply(obj: T): Promise<T>;
  get(req: GetRequest): Promise<T>;
  list(req: ListRequest, ctx: CallContext): Promise<{ items: T[]; resourceVersion: string }>;
  delete(req: DeleteRequest): Promise<DeleteResponse>;
  watch(req: WatchRequest, call: ServerWritableStream<WatchRequest, { type: string; object?: T }>, ctx: CallContext): Promise<void>;
}

/** A node may list and watch only the pods bound to it. */
export function scopedFieldSelector(ctx: CallContext, requested: string, scopeField: string | undefined): string {
  if (ctx.principal.role !== "node" || !scopeField) return requested;
  const own = `${scopeField}=${ctx.principal.nodeName}`;
  const parts = requested.split(",").map((p) => p.trim()).filter(Boolean);
  if (!parts.includes(own)) throw permissionDenied(`a node may only read its own objects: add fieldSelector ${own}`);
  return requested;
}

export function objectHandlers<T extends ApiObject>(registry: Registry<T>, nodeScopeField?: string): ObjectHandlers<T> {
  return {
    create: (obj) => registry.create(obj),
    apply: async (obj) => (await registry.apply(obj)).object,
    get: (req) => registry.get(req.namespace, required(req.name, "name")),
    list: (req, ctx) =>
      registry.list(req.namespace, {
        labelSelector: req.labelSelector,
        fieldSelector: scopedFieldSelector(ctx, req.fieldSelector, nodeScopeField),
      }),
    delete: async (req) => ({
      resourceVersion: await registry.delete(req.namespace, required(req.name, "name"), req.resourceVersion),
    }),
    watch: (req, call, ctx) => watchInto(registry, { ...req, fieldSelector: scopedFieldSelector(ctx, req.fieldSelector, nodeScopeField) }, call, ctx),
  };
}

function required(value: string, field: string): string {
  if (!value) throw invalidField(field, "is required");
  return value;
}

/**
 * Without a resourceVersion: the current objects as ADDED, then every change. With one: every change after it,
 * or OUT_OF_RANGE when it has been compacted (list again and watch from the list's resourceVersion).
 */
async function watchInto<T extends ApiObject>(
  registry: Registry<T>,
  req: WatchRequest,
  call: ServerWritableStream<WatchRequest, { type: string; object?: T }>,
  ctx: CallContext,
): Promise<void> {
  const options = { labelSelector: req.labelSelector, fieldSelector: req.fieldSelector };
  let from: number;
  if (req.resourceVersion) {
    from = Number(req.resourceVersion);
    if (!Number.isSafeInteger(from) || from < 0) throw invalidField("resourceVersion", "must be a non-negative integer");
    from += 1;
  } else {
    const initial = await registry.list(req.namespace, options);
    for (const object of initial.items) call.write({ type: "ADDED", object });
    from = Number(initial.resourceVersion) + 1;
  }
  await new Promise<void>((resolve, reject) => {
    const send = (type: WatchEventType, object: T) => call.write({ type, object });
    const fail = (e: Error) => {
      watcher.cancel();
      reject(e instanceof CompactedError ? new ApiError(status.OUT_OF_RANGE, `watch: ${e.message}; list again and watch from its resourceVersion`) : e);
    };
    const watcher = registry.watch(req.namespace, from, options, send, fail);
    ctx.signal.addEventListener("abort", () => {
      watcher.cancel();
      resolve();
    });
  });
}
