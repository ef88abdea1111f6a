// What the registry needs to know about each kind: its key prefix, codec, validation, defaults, and which part of
// an object a user's apply may change (spec and metadata) versus what only status writers touch.
import { Deployment } from "../gen/flotilla/v1/deployment.js";
import { Node } from "../gen/flotilla/v1/node.js";
import { Pod } from "../gen/flotilla/v1/pod.js";
import type { ObjectMeta } from "../gen/flotilla/v1/meta.js";
import { isDeepStrictEqual } from "node:util";
import { type FieldError, validateDeployment, validateNode, validatePod } from "../api/validation.js";

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
  kind: "Pod" | "Node" | "Deployment";
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
