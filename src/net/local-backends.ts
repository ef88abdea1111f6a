// Backends on this node are dialled at the container's own address and port instead of the published host port.
// An endpoint is nodeAddress:hostPort, the same everywhere in the cluster; but on the pod's own node, reaching it
// that way goes through Docker's port publishing, and traffic that our nftables DNAT has already redirected gets
// no second DNAT (the first NAT binding wins), so it would land on docker-proxy, a userspace relay. Dialling the
// container directly keeps the nftables path in the kernel with one NAT, as Docker's own published port has, and
// saves the userspace proxy and the ingress a hop. Pure: the node network calls it with what the runtime reports.
import type { Protocol, ServiceView } from "./types.js";

/** A running container's published port on this node, and where the container itself answers it. */
export interface LocalTarget {
  /** namespace/name of the pod. */
  pod: string;
  protocol: Protocol;
  hostPort: number;
  /** The container's address on its network (Docker's bridge) and its container port. */
  address: string;
  port: number;
}

const targetKey = (pod: string, protocol: Protocol, hostPort: number) => `${pod}|${protocol}|${hostPort}`;

/**
 * `services` with every backend that is one of `targets` (same pod, protocol and host port, on `nodeName`)
 * replaced by the container's address and port, marked `podNetwork`. Other backends, and the input, are untouched.
 */
export function preferLocalTargets(services: ServiceView[], nodeName: string, targets: readonly LocalTarget[]): ServiceView[] {
  if (targets.length === 0) return services;
  const byKey = new Map(targets.map((t) => [targetKey(t.pod, t.protocol, t.hostPort), t]));
  return services.map((s) => ({
    ...s,
    ports: s.ports.map((p) => ({
      ...p,
      backends: p.backends.map((b) => {
        const t = b.node === nodeName ? byKey.get(targetKey(b.pod, p.protocol, b.port)) : undefined;
        return t ? { ...b, address: t.address, port: t.port, podNetwork: true as const } : b;
      }),
    })),
  }));
}
