// What the userspace proxy should hold for a view of the services: one route per service port (its backends and
// affinity) and the listeners that feed it (clusterIp:port, and nodeAddress:nodePort for each node address), plus
// the VIPs to bind. Pure, so the proxy's sync is "diff two plans" and the mapping is unit-testable.
//
// A route is keyed by namespace/name:port/protocol so its balancer state (round-robin cursor, connection counts,
// affinity) survives syncs; a listener is keyed by protocol/address:port so an unchanged one stays open even when
// what it forwards to changes.
import { isIP } from "node:net";
import type { Backend, Protocol, ServiceView } from "./types.js";
import type { SessionAffinity } from "./balancer.js";

export interface PlannedRoute {
  key: string;
  /** namespace/name:port, for logs. */
  label: string;
  backends: Backend[];
  affinity: SessionAffinity;
}

export interface PlannedListener {
  key: string;
  protocol: Protocol;
  address: string;
  port: number;
  /** The key of the route it forwards to. */
  route: string;
}

/** A listener two service ports asked for: the first one (in view order) keeps it. */
export interface ListenerConflict {
  listener: string;
  kept: string;
  dropped: string;
}

export interface UserspacePlan {
  routes: Map<string, PlannedRoute>;
  listeners: Map<string, PlannedListener>;
  /** The distinct cluster IPs that have at least one listener, sorted. */
  vips: string[];
  conflicts: ListenerConflict[];
}

export function listenerKey(protocol: Protocol, address: string, port: number): string {
  return address.includes(":") ? `${protocol}/[${address}]:${port}` : `${protocol}/${address}:${port}`;
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

export function planUserspace(services: readonly ServiceView[], nodeAddresses: readonly string[]): UserspacePlan {
  const routes = new Map<string, PlannedRoute>();
  const listeners = new Map<string, PlannedListener>();
  const conflicts: ListenerConflict[] = [];
  const vips = new Set<string>();

  const claim = (protocol: Protocol, address: string, port: number, route: PlannedRoute): boolean => {
    const key = listenerKey(protocol, address, port);
    const existing = listeners.get(key);
    if (existing !== undefined) {
      conflicts.push({ listener: key, kept: routes.get(existing.route)?.label ?? route.label, dropped: route.label });
      return false;
    }
    listeners.set(key, { key, protocol, address, port, route: route.key });
    return true;
  };

  for (const service of services) {
    const vip = isIP(service.clusterIp) !== 0 ? service.clusterIp : "";
    for (const port of service.ports) {
      if (!validPort(port.port)) continue;
      const route: PlannedRoute = {
        key: `${service.namespace}/${service.name}:${port.port}/${port.protocol}`,
        label: `${service.namespace}/${service.name}:${port.name === "" ? port.port : port.name}`,
        backends: port.backends,
        affinity: service.sessionAffinity,
      };
      let used = false;
      if (vip !== "" && claim(port.protocol, vip, port.port, route)) {
        vips.add(vip);
        used = true;
      }
      if (validPort(port.nodePort)) {
        for (const address of nodeAddresses) used = claim(port.protocol, address, port.nodePort, route) || used;
      }
      if (used) routes.set(route.key, route);
    }
  }
  return { routes, listeners, vips: [...vips].sort(), conflicts };
}
