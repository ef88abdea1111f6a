// One scheduling decision: filter, then score, over an immutable snapshot of the nodes. Pure and deterministic.
import type { Pod } from "../../gen/flotilla/v1/pod.js";
import { firstFailure, type NodeInfo } from "./filter.js";
import { podRequests } from "./resources.js";
import { score, type ScoringStrategy } from "./score.js";

export type Decision =
  | { ok: true; nodeName: string; score: number }
  | { ok: false; reason: "Unschedulable"; message: string };

export function schedulePod(pod: Pod, nodes: NodeInfo[], strategy: ScoringStrategy): Decision {
  const request = podRequests(pod);
  const failures = new Map<string, number>();
  let best: { nodeName: string; score: number } | undefined;
  for (const info of nodes) {
    const failure = firstFailure(pod, request, info);
    if (failure) {
      failures.set(failure, (failures.get(failure) ?? 0) + 1);
      continue;
    }
    const nodeName = info.node.metadata!.name;
    const s = score(strategy, request, info);
    if (!best || s > best.score || (s === best.score && nodeName < best.nodeName)) best = { nodeName, score: s };
  }
  if (best) return { ok: true, ...best };
  return { ok: false, reason: "Unschedulable", message: explain(nodes.length, failures) };
}

function explain(total: number, failures: Map<string, number>): string {
  if (total === 0) return "0/0 nodes are available: no nodes have joined the cluster";
  const parts = [...failures.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([reason, count]) => `${count} ${reason}`);
  return `0/${total} nodes are available: ${parts.join(", ")}.`;
}
