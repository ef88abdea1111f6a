// What the registry needs to know about each kind: its key prefix, codec, validation, defaults, and which part of
// an object a user's apply may change (spec and metadata) versus what only status writers touch.
import { Deployment } from "../gen/flotilla/v1/deployment.js";
import { Node } from "../gen/flotilla/v1/node.js";
import { Pod } from "../gen/flotilla/v1/pod.js";
import type { ObjectMeta } from "../gen/flotilla/v1/meta.js";
import { isDeepStrictEqual } from "node:util";
import { Ingress } from "../gen/flotilla/v1/ingress.js";
import { Endpoints, Service } from "../gen/flotilla/v1/service.js";
import { type FieldError, validateDeployment, validateEndpoints, validateIngress, validateNode, validatePod, validateService } from "../api/validation.js";

export interface ApiObject {
  apiVersion: string;
  kind: string;
  metadata?: ObjectMeta | undefined;
}

export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
  fromPartial(object: object): T;
}

export interface KindInfo<T extends ApiObject> {
  kind: "Pod" | "Node" | "Deployment" | "Service" | "Endpoints" | "Ingress";
  plural: string;
  namespaced: boolean;
  codec: Codec<T>;
  validate(obj: T): FieldError[];
  /** Fills defaults in place, before validation. */
  applyDefaults(obj: T): void;
  /** Whether a new spec differs from the stored one, which bumps metadata.generation. */
  specOf(obj: T): unknown;
  /**
   * Checks an update of an existing object, after `to` has taken what it keeps from `current`. Returns the
   * fields that may not change.
   */
  validateUpdate?(current: T, next: T): FieldError[];
  /** Copies the status of `from` into `to` (apply keeps status, status updates keep spec). */
  copyStatus(from: T, to: T): void;
  /** Fields a field selector may name ("spec.nodeName=x"). */
  selectableFields: string[];
  fieldValue(obj: T, field: string): string | undefined;
}

export const API_VERSION = "flotilla.io/v1";

export const PodKind: KindInfo<Pod> = {
  kind: "Pod",
  plural: "pods",
  namespaced: true,
  codec: Pod,
  validate: validatePod,
  applyDefaults(pod) {
    if (pod.spec) defaultPodSpec(pod.spec);
  },
  specOf: (pod) => pod.spec,
  validateUpdate(current, next) {
    // The scheduler's binding survives a re-apply of the manifest that created the pod.
    if (next.spec && !next.spec.nodeName) next.spec.nodeName = current.spec?.nodeName ?? "";
    if (isDeepStrictEqual(current.spec, next.spec)) return [];
    return [{ field: "spec", rule: "a pod's spec cannot change once it is created; delete and recreate the pod, or manage it with a Deployment" }];
  },
  selectableFields: ["metadata.name", "spec.nodeName", "status.phase"],
  copyStatus(from, to) {
    to.status = from.status;
  },
  fieldValue(pod, field) {
    if (field === "spec.nodeName") return pod.spec?.nodeName ?? "";
    if (field === "status.phase") return pod.status?.phase ?? "";
    if (field === "metadata.name") return pod.metadata?.name;
    return undefined;
  },
};

export function defaultPodSpec(spec: NonNullable<Pod["spec"]>): void {
  spec.restartPolicy ||= "Always";
  for (const c of spec.containers) {
    c.imagePullPolicy ||= "IfNotPresent";
    for (const p of c.ports) p.protocol ||= "TCP";
  }
}

export const DeploymentKind: KindInfo<Deployment> = {
  kind: "Deployment",
  plural: "deployments",
  namespaced: true,
  codec: Deployment,
  validate: validateDeployment,
  applyDefaults(d) {
    if (!d.spec) return;
    d.spec.replicas ??= 1;
    if (d.spec.template?.spec) defaultPodSpec(d.spec.template.spec);
  },
  specOf: (d) => d.spec,
  selectableFields: ["metadata.name"],
  copyStatus(from, to) {
    to.status = from.status;
  },
  fieldValue(d, field) {
    return field === "metadata.name" ? d.metadata?.name : undefined;
  },
};

export const NodeKind: KindInfo<Node> = {
  kind: "Node",
  plural: "nodes",
  namespaced: false,
  codec: Node,
  validate: validateNode,
  applyDefaults() {},
  specOf: (n) => n.spec,
  selectableFields: ["metadata.name"],
  copyStatus(from, to) {
    to.status = from.status;
  },
  fieldValue(n, field) {
    return field === "metadata.name" ? n.metadata?.name : undefined;
  },
};

export const ServiceKind: KindInfo<Service> = {
  kind: "Service",
  plural: "services",
  namespaced: true,
  codec: Service,
  validate: validateService,
  applyDefaults(svc) {
    if (!svc.spec) return;
    svc.spec.type ||= "ClusterIP";
    svc.spec.sessionAffinity ||= "None";
    for (const p of svc.spec.ports) {
      p.protocol ||= "TCP";
      p.targetPort ||= String(p.port);
    }
  },
  specOf: (svc) => svc.spec,
  validateUpdate(current, next) {
    // The address clients were given stays the service's for its whole life (re-applying a manifest keeps it).
    const was = current.spec?.clusterIp ?? "";
    if (next.spec && !next.spec.clusterIp) next.spec.clusterIp = was;
    if (next.spec && was && next.spec.clusterIp !== was) {
      return [{ field: "spec.clusterIp", value: next.spec.clusterIp, rule: `cannot change once allocated (it is ${was}); delete and recreate the service` }];
    }
    return [];
  },
  selectableFields: ["metadata.name"],
  copyStatus(from, to) {
    to.status = from.status;
  },
  fieldValue(svc, field) {
    return field === "metadata.name" ? svc.metadata?.name : undefined;
  },
};

/** Written by the endpoints controller, not by users (the API serves it read-only). */
export const EndpointsKind: KindInfo<Endpoints> = {
  kind: "Endpoints",
  plural: "endpoints",
  namespaced: true,
  codec: Endpoints,
  validate: validateEndpoints,
  applyDefaults() {},
  specOf: (e) => e.ports,
  selectableFields: ["metadata.name"],
  copyStatus() {},
  fieldValue(e, field) {
    return field === "metadata.name" ? e.metadata?.name : undefined;
  },
};

export const IngressKind: KindInfo<Ingress> = {
  kind: "Ingress",
  plural: "ingresses",
  namespaced: true,
  codec: Ingress,
  validate: validateIngress,
  applyDefaults(ing) {
    for (const r of ing.spec?.rules ?? []) for (const p of r.paths) p.pathPrefix ||= "/";
  },
  specOf: (ing) => ing.spec,
  selectableFields: ["metadata.name"],
  copyStatus() {},
  fieldValue(ing, field) {
    return field === "metadata.name" ? ing.metadata?.name : undefined;
  },
};
