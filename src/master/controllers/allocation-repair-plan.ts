// Which service allocations (virtual IPs, NodePorts) are leaked: held by a key whose owner service does not exist
// or no longer holds that value. A master that crashes between claiming a value and storing (or after deleting)
// its service leaves such a key, and the value would stay taken for ever. Pure: the repair loop feeds it lists.
import type { Service } from "../../gen/flotilla/v1/service.js";
import type { Allocation } from "../service-allocator.js";

const holding = (pool: Allocation["pool"], value: string, owner: string) => `${pool}|${value}|${owner}`;

/** Allocations that no service in `services` holds. */
export function leakedAllocations(allocations: readonly Allocation[], services: readonly Service[]): Allocation[] {
  const held = new Set<string>();
  for (const svc of services) {
    const owner = `${svc.metadata?.namespace ?? ""}/${svc.metadata?.name ?? ""}`;
    if (svc.spec?.clusterIp) held.add(holding("ip", svc.spec.clusterIp, owner));
    if (svc.spec?.type === "NodePort") for (const p of svc.spec.ports) if (p.nodePort) held.add(holding("nodePort", String(p.nodePort), owner));
  }
  return allocations.filter((a) => !held.has(holding(a.pool, a.value, a.owner)));
}

/**
 * Splits this pass's leaked allocations into those to release now and those to keep watching. A value is claimed
 * before its service is written, so a create in flight looks leaked for a moment: only a key seen leaked on two
 * passes in a row, unchanged (same modRevision) in between, is released.
 */
export function confirmLeaks(
  leaked: readonly Allocation[],
  suspectedBefore: ReadonlyMap<string, number>,
): { release: Allocation[]; suspects: Map<string, number> } {
  const release: Allocation[] = [];
  const suspects = new Map<string, number>();
  for (const a of leaked) {
    if (suspectedBefore.get(a.key) === a.modRevision) release.push(a);
    else suspects.set(a.key, a.modRevision);
  }
  return { release, suspects };
}
