// Resource arithmetic for scheduling: millicores and bytes, from pod requests and node allocatable.
import type { Node } from "../../gen/flotilla/v1/node.js";
import type { Pod } from "../../gen/flotilla/v1/pod.js";
import { parseBytes, parseCpuMillis } from "../../api/quantity.js";

export interface Resources {
  cpuMillis: number;
  memoryBytes: number;
}

export const ZERO: Resources = { cpuMillis: 0, memoryBytes: 0 };

export function add(a: Resources, b: Resources): Resources {
  return { cpuMillis: a.cpuMillis + b.cpuMillis, memoryBytes: a.memoryBytes + b.memoryBytes };
}

/** A container's request, or its limit when only a limit is given (as Kubernetes defaults it). */
export function podRequests(pod: Pod): Resources {
  let total = ZERO;
  for (const c of pod.spec?.containers ?? []) {
    const requests = c.resources?.requests ?? {};
    const limits = c.resources?.limits ?? {};
    const cpu = requests.cpu ?? limits.cpu;
    const memory = requests.memory ?? limits.memory;
    total = add(total, { cpuMillis: cpu ? parseCpuMillis(cpu) : 0, memoryBytes: memory ? parseBytes(memory) : 0 });
  }
  return total;
}

export function nodeAllocatable(node: Node): Resources {
  const allocatable = node.status?.allocatable ?? {};
  const capacity = node.status?.capacity ?? {};
  const cpu = allocatable.cpu ?? capacity.cpu;
  const memory = allocatable.memory ?? capacity.memory;
  return { cpuMillis: cpu ? parseCpuMillis(cpu) : 0, memoryBytes: memory ? parseBytes(memory) : 0 };
}

export function isTerminal(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase === "Succeeded" || phase === "Failed";
}

/** host ports a pod claims, as "TCP/8080". */
export function hostPortsOf(pod: Pod): string[] {
  return (pod.spec?.containers ?? []).flatMap((c) =>
    c.ports.filter((p) => p.hostPort > 0).map((p) => `${p.protocol || "TCP"}/${p.hostPort}`),
  );
}
