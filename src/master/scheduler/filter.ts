// Feasibility predicates. Each returns undefined when the node fits, or the reason it does not; reasons are named
// constants so the CLI can explain a Pending pod ("0/3 nodes are available: 2 Insufficient cpu, ...").
import type { Node } from "../../gen/flotilla/v1/node.js";
import type { Pod } from "../../gen/flotilla/v1/pod.js";
import { hostPortsOf, type Resources } from "./resources.js";

export const NODE_NOT_READY = "node(s) were not ready";
export const NODE_UNSCHEDULABLE = "node(s) were unschedulable (cordoned)";
export const NODE_SELECTOR_MISMATCH = "node(s) didn't match the pod's node selector";
export const INSUFFICIENT_CPU = "Insufficient cpu";
export const INSUFFICIENT_MEMORY = "Insufficient memory";
export const HOST_PORT_IN_USE = "node(s) didn't have free ports for the requested pod ports";

/** A node as the scheduler sees it: its object plus what its bound pods already claim. */
export interface NodeInfo {
  node: Node;
  allocatable: Resources;
  requested: Resources;
  hostPorts: Set<string>;
}

export type Predicate = (pod: Pod, request: Resources, info: NodeInfo) => string | undefined;

export const nodeReady: Predicate = (_pod, _request, { node }) =>
  node.status?.conditions.some((c) => c.type === "Ready" && c.status === "True") ? undefined : NODE_NOT_READY;

export const nodeSchedulable: Predicate = (_pod, _request, { node }) =>
  node.spec?.unschedulable ? NODE_UNSCHEDULABLE : undefined;

export const nodeSelectorMatches: Predicate = (pod, _request, { node }) => {
  const labels = node.metadata?.labels ?? {};
  const wanted = Object.entries(pod.spec?.nodeSelector ?? {});
  return wanted.every(([k, v]) => labels[k] === v) ? undefined : NODE_SELECTOR_MISMATCH;
};

export const cpuFits: Predicate = (_pod, request, info) =>
  request.cpuMillis > 0 && info.requested.cpuMillis + request.cpuMillis > info.allocatable.cpuMillis
    ? INSUFFICIENT_CPU
    : undefined;

export const memoryFits: Predicate = (_pod, request, info) =>
  request.memoryBytes > 0 && info.requested.memoryBytes + request.memoryBytes > info.allocatable.memoryBytes
    ? INSUFFICIENT_MEMORY
    : undefined;

export const hostPortsFree: Predicate = (pod, _request, info) =>
  hostPortsOf(pod).some((p) => info.hostPorts.has(p)) ? HOST_PORT_IN_USE : undefined;

/** In order: cheap and decisive checks first, so the reason given is the most fundamental one. */
export const PREDICATES: Predicate[] = [nodeReady, nodeSchedulable, nodeSelectorMatches, cpuFits, memoryFits, hostPortsFree];

export function firstFailure(pod: Pod, request: Resources, info: NodeInfo): string | undefined {
  for (const predicate of PREDICATES) {
    const reason = predicate(pod, request, info);
    if (reason) return reason;
  }
  return undefined;
}
