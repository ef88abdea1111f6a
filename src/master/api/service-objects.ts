// Services' create, apply and delete: the generic handlers plus the allocation of their virtual IP and NodePorts
// (service-allocator.ts). A value is claimed before the object is written and released if the write fails; apply
// keeps what a service already holds (its address never changes; a NodePort stays with its port) and releases what
// it no longer needs; delete releases everything after the object is gone.
import type { DeleteRequest, DeleteResponse } from "../../gen/flotilla/v1/meta.js";
import type { Service } from "../../gen/flotilla/v1/service.js";
import { ServiceKind } from "../kinds.js";
import { DEFAULT_NAMESPACE, type Registry } from "../registry.js";
import type { ServiceAllocator } from "../service-allocator.js";
import { invalid } from "../errors.js";
import type { ObjectHandlers } from "./object-service.js";

type ServicePort = NonNullable<Service["spec"]>["ports"][number];

export function serviceHandlers(
  registry: Registry<Service>,
  allocator: ServiceAllocator,
  base: ObjectHandlers<Service>,
): Pick<ObjectHandlers<Service>, "create" | "apply" | "delete"> {
  const ownerOf = (svc: Service) => `${svc.metadata?.namespace || DEFAULT_NAMESPACE}/${svc.metadata?.name ?? ""}`;
  const portKey = (p: ServicePort) => `${p.protocol || "TCP"}/${p.port}`;

  /** Checks the manifest before anything is claimed, so bad input never leaves an allocation behind. */
  function check(svc: Service): void {
    const copy = ServiceKind.codec.fromPartial(svc);
    ServiceKind.applyDefaults(copy);
    const errors = ServiceKind.validate(copy);
    if (errors.length) throw invalid("Service", copy.metadata?.name ?? "", errors);
  }

  /** Claims what `svc` needs that `current` does not hold; returns an undo for the claims made here. */
  async function claim(svc: Service, current: Service | undefined): Promise<() => Promise<void>> {
    const owner = ownerOf(svc);
    const spec = svc.spec!;
    const undo: (() => Promise<void>)[] = [];
    const rollback = async () => {
      for (const u of undo.reverse()) await u().catch(() => undefined);
    };
    try {
      const held = current?.spec?.clusterIp ?? "";
      if (!held) {
        spec.clusterIp = await allocator.allocateIp(owner, spec.clusterIp || undefined);
        const ip = spec.clusterIp;
        undo.push(() => allocator.releaseIp(owner, ip));
      }
      const heldPorts = new Map((current?.spec?.type === "NodePort" ? current.spec.ports : []).map((p) => [portKey(p), p.nodePort]));
      if ((spec.type || "ClusterIP") === "NodePort") {
        for (const [i, p] of spec.ports.entries()) {
          const kept = heldPorts.get(portKey(p));
          if (kept && (!p.nodePort || p.nodePort === kept)) {
            p.nodePort = kept;
            continue;
          }
          p.nodePort = await allocator.allocateNodePort(owner, `spec.ports[${i}].nodePort`, p.nodePort || undefined);
          const port = p.nodePort;
          undo.push(() => allocator.releaseNodePort(owner, port));
        }
      }
    } catch (e) {
      await rollback();
      throw e;
    }
    return rollback;
  }

  /** Releases what `before` held and `after` (the stored result) does not. */
  async function releaseUnused(before: Service | undefined, after: Service | undefined): Promise<void> {
    if (!before?.spec) return;
    const owner = ownerOf(before);
    if (before.spec.clusterIp && before.spec.clusterIp !== after?.spec?.clusterIp) await allocator.releaseIp(owner, before.spec.clusterIp);
    const stillUsed = new Set((after?.spec?.type === "NodePort" ? after.spec.ports : []).map((p) => p.nodePort));
    for (const p of before.spec.type === "NodePort" ? before.spec.ports : []) {
      if (p.nodePort && !stillUsed.has(p.nodePort)) await allocator.releaseNodePort(owner, p.nodePort);
    }
  }

  return {
    async create(svc) {
      check(svc);
      const rollback = await claim(svc, undefined);
      try {
        return await base.create(svc);
      } catch (e) {
        await rollback();
        throw e;
      }
    },
    async apply(svc) {
      check(svc);
      const current = await registry.maybeGet(svc.metadata?.namespace ?? "", svc.metadata?.name ?? "");
      const rollback = await claim(svc, current);
      let stored: Service;
      try {
        stored = await base.apply(svc);
      } catch (e) {
        await rollback();
        throw e;
      }
      await releaseUnused(current, stored);
      return stored;
    },
    async delete(req: DeleteRequest): Promise<DeleteResponse> {
      const current = await registry.maybeGet(req.namespace, req.name);
      const res = await base.delete(req);
      await releaseUnused(current, undefined);
      return res;
    },
  };
}
