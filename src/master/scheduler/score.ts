// Scoring of feasible nodes, 0–100, higher is better. Least-allocated spreads pods across nodes (the default);
// most-allocated packs them onto the fewest nodes.
import type { NodeInfo } from "./filter.js";
import type { Resources } from "./resources.js";

export type ScoringStrategy = "least-allocated" | "most-allocated";
export const SCORING_STRATEGIES: ScoringStrategy[] = ["least-allocated", "most-allocated"];

function fractionUsed(used: number, capacity: number): number {
  if (capacity <= 0) return 1;
  return Math.min(1, used / capacity);
}

export function score(strategy: ScoringStrategy, request: Resources, info: NodeInfo): number {
  const cpu = fractionUsed(info.requested.cpuMillis + request.cpuMillis, info.allocatable.cpuMillis);
  const memory = fractionUsed(info.requested.memoryBytes + request.memoryBytes, info.allocatable.memoryBytes);
  const used = (cpu + memory) / 2;
  return Math.round((strategy === "least-allocated" ? 1 - used : used) * 100);
}
