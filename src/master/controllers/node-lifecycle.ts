// Decides node health from heartbeats, pure. A node whose agent stopped posting heartbeats for longer than the
// grace period becomes Ready=Unknown (shown as NotReady); after the eviction timeout its pods are marked Failed
// with reason NodeLost, so their controllers replace them elsewhere.
import type { Node } from "../../gen/flotilla/v1/node.js";

export interface NodeHealthDecision {
  markNotReady: boolean;
  evictPods: boolean;
}

export function lastHeartbeat(node: Node): number {
  const ready = node.status?.conditions.find((c) => c.type === "Ready");
  const t = Date.parse(ready?.lastHeartbeatTime ?? "");
  return Number.isNaN(t) ? 0 : t;
}

export function decideNodeHealth(node: Node, nowMs: number, gracePeriodMs: number, evictionTimeoutMs: number): NodeHealthDecision {
  const ready = node.status?.conditions.find((c) => c.type === "Ready");
  const silentFor = nowMs - lastHeartbeat(node);
  return {
    markNotReady: ready?.status === "True" && silentFor > gracePeriodMs,
    evictPods: ready?.status !== "True" && silentFor > gracePeriodMs + evictionTimeoutMs,
  };
}
