// Keeps every Service's Endpoints (same namespace and name) equal to planEndpoints over the pods it selects. Pod and
// Service events only queue the affected services' keys; reconcile works from the informers' caches, writes only
// when the result differs, and deletes the Endpoints of a Service that is gone.
import { isDeepStrictEqual } from "node:util";
import type { Pod } from "../../gen/flotilla/v1/pod.js";
import type { Endpoints, Service } from "../../gen/flotilla/v1/service.js";
import type { Logger } from "../../common/logger.js";
import type { Registry } from "../registry.js";
import { planEndpoints, selects } from "./endpoints-plan.js";
import { type Informer, objectKey } from "./informer.js";
import { WorkQueue } from "./work-queue.js";

export interface EndpointsControllerDeps {
  endpoints: Registry<Endpoints>;
  serviceInformer: Informer<Service>;
  podInformer: Informer<Pod>;
  log: Logger;
}

export class EndpointsController {
  private readonly queue: WorkQueue;

  constructor(private readonly deps: EndpointsControllerDeps) {
    this.queue = new WorkQueue(
      (key) => this.reconcile(key),
      (key, e) => deps.log.warn({ err: e, service: key }, "endpoints reconcile failed; will retry"),
    );
    const enqueue = (s: Service) => this.queue.add(objectKey(s));
    deps.serviceInformer.addHandlers({ onAdd: enqueue, onUpdate: (_o, s) => enqueue(s), onDelete: enqueue });
    // A pod matters to the services that select it before or after the change.
    const enqueueSelecting = (...pods: Pod[]) => {
      for (const s of deps.serviceInformer.list()) if (pods.some((p) => selects(s, p))) enqueue(s);
    };
    deps.podInformer.addHandlers({ onAdd: (p) => enqueueSelecting(p), onUpdate: (o, p) => enqueueSelecting(o, p), onDelete: (p) => enqueueSelecting(p) });
  }

  start(): void {
    this.queue.start();
    for (const s of this.deps.serviceInformer.list()) this.queue.add(objectKey(s));
  }

  stop(): void {
    this.queue.stop();
  }

  private async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split("/") as [string, string];
    const service = this.deps.serviceInformer.get(key);
    const current = await this.deps.endpoints.maybeGet(namespace, name);
    if (!service) {
      if (current) await this.deps.endpoints.delete(namespace, name, current.metadata?.resourceVersion ?? "");
      return;
    }
    const ports = planEndpoints(service, this.deps.podInformer.list());
    if (current && isDeepStrictEqual(current.ports, ports)) return;
    const next: Endpoints = { apiVersion: "", kind: "", metadata: { ...(current?.metadata ?? service.metadata!), name, namespace, labels: service.metadata?.labels ?? {} }, ports };
    if (current) await this.deps.endpoints.apply({ ...next, metadata: { ...next.metadata!, resourceVersion: "" } });
    else await this.deps.endpoints.create({ ...next, metadata: { name, namespace, labels: service.metadata?.labels ?? {} } as Endpoints["metadata"] });
    const ready = ports.reduce((n, p) => n + p.ready.length, 0);
    this.deps.log.info({ service: key, ready, notReady: ports.reduce((n, p) => n + p.notReady.length, 0) }, "endpoints updated");
  }
}
