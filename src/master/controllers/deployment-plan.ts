// The Deployment controller's decisions, pure: given a Deployment and the pods it owns, which pods to create and
// which to delete. Pods of an older template are kept until enough pods of the current template are ready,
// then removed (a surge roll-out; rolling-update tuning comes with `flotilla rollout`).
import { createHash } from "node:crypto";
import type { Deployment, DeploymentStatus } from "../../gen/flotilla/v1/deployment.js";
import { PodTemplateSpec } from "../../gen/flotilla/v1/deployment.js";
import type { Pod } from "../../gen/flotilla/v1/pod.js";
import { isPodReady, isPodTerminal } from "../../api/pod-status.js";

export const TEMPLATE_HASH_LABEL = "pod-template-hash";

export interface DeploymentPlan {
  /** How many pods of the current template to create. */
  create: number;
  /** Pods to delete, surplus and failed ones first. */
  delete: Pod[];
  status: DeploymentStatus;
}

/** A short, stable hash of the pod template; pods carry it as a label so template changes are noticed. */
export function templateHash(deployment: Deployment): string {
  const bytes = PodTemplateSpec.encode(PodTemplateSpec.fromPartial(deployment.spec?.template ?? {})).finish();
  return createHash("sha256").update(bytes).digest("hex").slice(0, 10);
}

export function ownedBy(deployment: Deployment, pod: Pod): boolean {
  return pod.metadata?.ownerReferences.some((r) => r.controller && r.uid === deployment.metadata?.uid) ?? false;
}

/**
 * Ranks pods for deletion, cheapest loss first: unscheduled, then not yet running, then not ready, then the
 * youngest (kubectl's scale-down order).
 */
export function deletionRank(a: Pod, b: Pod): number {
  const rank = (p: Pod) => [
    p.spec?.nodeName ? 1 : 0,
    p.status?.phase === "Running" ? 1 : 0,
    isPodReady(p) ? 1 : 0,
  ];
  const [ra, rb] = [rank(a), rank(b)];
  for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i] - rb[i];
  return (b.metadata?.creationTimestamp ?? "").localeCompare(a.metadata?.creationTimestamp ?? "");
}

export function planDeployment(deployment: Deployment, ownedPods: Pod[]): DeploymentPlan {
  const desired = deployment.spec?.replicas ?? 1;
  const hash = templateHash(deployment);
  const terminal = ownedPods.filter(isPodTerminal);
  const live = ownedPods.filter((p) => !isPodTerminal(p));
  const current = live.filter((p) => p.metadata?.labels[TEMPLATE_HASH_LABEL] === hash);
  const outdated = live.filter((p) => p.metadata?.labels[TEMPLATE_HASH_LABEL] !== hash);
  const currentReady = current.filter(isPodReady).length;

  const toDelete: Pod[] = [...terminal];
  const surplus = current.length - desired;
  if (surplus > 0) toDelete.push(...[...current].sort(deletionRank).slice(0, surplus));
  // Old pods go once the new template covers the desired count with ready pods (or nothing is wanted at all).
  if (currentReady >= desired) toDelete.push(...outdated);

  const ready = live.filter(isPodReady).length;
  return {
    create: Math.max(0, desired - current.length),
    delete: toDelete,
    status: {
      observedGeneration: deployment.metadata?.generation ?? 0n,
      replicas: live.length,
      readyReplicas: ready,
      availableReplicas: ready,
      updatedReplicas: Math.min(current.length, desired),
      conditions: deployment.status?.conditions ?? [],
    },
  };
}

/** The pod to create for a Deployment: its template, its labels plus the template hash, owned by it. */
export function podFromTemplate(deployment: Deployment): Pod {
  const template = deployment.spec!.template!;
  const meta = deployment.metadata!;
  const hash = templateHash(deployment);
  return {
    apiVersion: "flotilla.io/v1",
    kind: "Pod",
    metadata: {
      name: "",
      generateName: `${meta.name.slice(0, 45)}-${hash.slice(0, 8)}-`,
      namespace: meta.namespace,
      uid: "",
      labels: { ...template.metadata?.labels, [TEMPLATE_HASH_LABEL]: hash },
      annotations: { ...template.metadata?.annotations },
      resourceVersion: "",
      generation: 0n,
      ownerReferences: [{ apiVersion: "flotilla.io/v1", kind: "Deployment", name: meta.name, uid: meta.uid, controller: true }],
      creationTimestamp: "",
    },
    spec: structuredClone(template.spec!),
  };
}
