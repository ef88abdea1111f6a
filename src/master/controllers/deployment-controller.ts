// Keeps each Deployment's pods at spec.replicas: creates missing ones, deletes surplus and failed ones, and
// deletes the pods of a Deployment that is gone (ownerReference garbage collection). Event handlers only queue
// the owning Deployment's key; reconcile works from the informers' caches and is idempotent.
import { status as grpcStatus } from "@grpc/grpc-js";
import { isDeepStrictEqual } from "node:util";
import type { Deployment } from "../../gen/flotilla/v1/deployment.js";
import type { Pod } from "../../gen/flotilla/v1/pod.js";
import type { Logger } from "../../common/logger.js";
import { ApiError } from "../errors.js";
import type { Registry } from "../registry.js";
import { type Informer, objectKey } from "./informer.js";
import { ownedBy, planDeployment, podFromTemplate } from "./deployment-plan.js";
import { WorkQueue } from "./work-queue.js";

export interface DeploymentControllerDeps {
  deployments: Registry<Deployment>;
  pods: Registry<Pod>;
  deploymentInformer: Informer<Deployment>;
  podInformer: Informer<Pod>;
  log: Logger;
}

export class DeploymentController {
  private readonly queue: WorkQueue;

  constructor(private readonly deps: DeploymentControllerDeps) {
    this.queue = new WorkQueue(
      (key) => this.reconcile(key),
      (key, e) => deps.log.warn({ err: e, deployment: key }, "reconcile failed; will retry"),
    );
    const enqueue = (d: Deployment) => this.queue.add(objectKey(d));
    deps.deploymentInformer.addHandlers({ onAdd: enqueue, onUpdate: (_o, d) => enqueue(d), onDelete: enqueue });
    const enqueueOwner = (pod: Pod) => {
      const owner = pod.metadata?.ownerReferences.find((r) => r.controller && r.kind === "Deployment");
      if (owner) this.queue.add(`${pod.metadata!.namespace}/${owner.name}`);
    };
    deps.podInformer.addHandlers({ onAdd: enqueueOwner, onUpdate: (_o, p) => enqueueOwner(p), onDelete: enqueueOwner });
  }

  start(): void {
    this.queue.start();
    for (const d of this.deps.deploymentInformer.list()) this.queue.add(objectKey(d));
  }

  stop(): void {
    this.queue.stop();
  }

  private async reconcile(key: string): Promise<void> {
    const deployment = this.deps.deploymentInformer.get(key);
    if (!deployment) return this.collectOrphans(key);
    const owned = this.deps.podInformer.list().filter((p) => ownedBy(deployment, p));
    const plan = planDeployment(deployment, owned);
    for (const pod of plan.delete) await this.deletePod(pod);
    for (let i = 0; i < plan.create; i++) {
      const created = await this.deps.pods.create(podFromTemplate(deployment));
      this.deps.podInformer.observe(created);
    }
    if (plan.create || plan.delete.length) {
      this.deps.log.info({ deployment: key, created: plan.create, deleted: plan.delete.length }, "reconciled replicas");
    }
    if (!isDeepStrictEqual(stripConditions(deployment.status), stripConditions(plan.status))) {
      const updated = await this.deps.deployments.updateStatus({ ...deployment, status: plan.status, metadata: { ...deployment.metadata!, resourceVersion: "" } });
      this.deps.deploymentInformer.observe(updated);
    }
  }

  /** The Deployment is gone: its pods go too. */
  private async collectOrphans(key: string): Promise<void> {
    const [namespace, name] = key.split("/");
    for (const pod of this.deps.podInformer.list()) {
      const owner = pod.metadata?.ownerReferences.find((r) => r.controller && r.kind === "Deployment");
      if (pod.metadata!.namespace !== namespace || owner?.name !== name) continue;
      const current = this.deps.deploymentInformer.get(key);
      if (current && current.metadata?.uid === owner.uid) continue;
      await this.deletePod(pod);
    }
  }

  private async deletePod(pod: Pod): Promise<void> {
    try {
      const revision = await this.deps.pods.delete(pod.metadata!.namespace, pod.metadata!.name);
      this.deps.podInformer.forget(pod, Number(revision));
    } catch (e) {
      if (!(e instanceof ApiError && e.code === grpcStatus.NOT_FOUND)) throw e;
    }
  }
}

function stripConditions(status: Deployment["status"]) {
  return status ? { ...status, conditions: [] } : undefined;
}
