// The userspace service proxy: makes every clusterIp:port, and every nodePort on the node's addresses, answer by
// accepting the connection (TCP) or datagram (UDP) in this process and relaying it to a backend chosen by the
// port's balancer (round-robin or least-connections, optional ClientIP affinity). It works anywhere Node can open
// sockets (no nftables, no root when the VIPs are on loopback), at the cost of copying every byte through Node.
//
// The client's address is NOT preserved: a backend sees the connection (or datagram) coming from this proxy's
// address, not from the client. ClientIP affinity is decided here, on the real client address, so it still works.
//
// Invariants:
// - Syncs run one at a time, in call order, and touch only what changed: a listener (protocol/address:port) that is
//   still wanted stays open; a new one opens, a gone one closes. A backend list change reaches the next new
//   connection at once (the listener reads the port's balancer, which the sync updates in place).
// - The VIPs are handed to `vips.ensure` after stale listeners close and before new ones bind.
// - Draining: a backend that leaves the list gets no new connection after the sync, while TCP connections already
//   open to it continue until either side closes them. UDP sessions to it end at the sync (UDP has no close; see
//   userspace-udp.ts).
// - A service port that disappears closes its listeners; its open TCP connections are kept until they end (or
//   close()), unless its VIP is released from the node (DummyInterfaceVips), which breaks them in the kernel.
// - A failed bind does not stop the rest of the sync: every other change is applied, the failed listener is retried
//   on the next sync, and sync rejects with an AggregateError naming what failed.
// - close() waits for a running sync, closes every listener and every open proxied connection, then releases the
//   VIPs; later syncs reject.
import { Balancer, type BalanceMode } from "./balancer.js";
import type { ServiceProxy, ServiceView } from "./types.js";
import { LoopbackVips, type VipAddresses } from "./vip-addresses.js";
import { planUserspace, type PlannedListener } from "./userspace-plan.js";
import { type Destroyable, type Route, silentLog, type UserspaceLog } from "./userspace-route.js";
import { TcpListener } from "./userspace-tcp.js";
import { UdpListener } from "./userspace-udp.js";

export type { UserspaceLog } from "./userspace-route.js";

export interface UserspaceProxyOptions {
  /** The node's addresses that NodePorts answer on (e.g. ["10.0.0.5"]); empty: no NodePort listeners. */
  nodeAddresses: string[];
  /** How a service port spreads new connections over its backends (default "round-robin"). */
  balance?: BalanceMode;
  /** Holds the VIPs so listeners can bind them (default LoopbackVips: VIPs must be in 127.0.0.0/8). */
  vips?: VipAddresses;
  /** How long a backend may take to accept a TCP connection before the next one is tried (default 1000 ms). */
  connectTimeoutMs?: number;
  /**
   * The same for the last backend not yet tried, when giving up means resetting the client (default 5000 ms). A
   * backend whose accept queue is full drops SYNs and the kernel retries after 1 s and 3 s, as a direct client's
   * would: giving up at 1 s would turn a busy backend's delay into an error.
   */
  lastConnectTimeoutMs?: number;
  /** A UDP session with no datagram either way for this long ends (default 30 s). */
  udpIdleTimeoutMs?: number;
  /** UDP sessions per listener before the least recently active is ended (default 4096). */
  udpMaxSessions?: number;
  log?: UserspaceLog;
}

interface HeldListener {
  planned: PlannedListener;
  listener: TcpListener | UdpListener;
}

/** A route as the proxy holds it: the label may change (a renamed port) while the balancer state carries over. */
interface MutableRoute extends Route {
  label: string;
}

export class UserspaceProxy implements ServiceProxy {
  readonly mode = "userspace";
  private readonly nodeAddresses: string[];
  private readonly balance: BalanceMode;
  private readonly vips: VipAddresses;
  private readonly connectTimeoutMs: number;
  private readonly lastConnectTimeoutMs: number;
  private readonly udpIdleTimeoutMs: number;
  private readonly udpMaxSessions: number;
  private readonly log: UserspaceLog;
  private routes = new Map<string, MutableRoute>();
  private readonly listeners = new Map<string, HeldListener>();
  /** Every open proxied TCP socket (client and upstream sides), for close(). */
  private readonly connections = new Set<Destroyable>();
  /** The tail of the sync queue. */
  private queue: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;

  constructor(options: UserspaceProxyOptions) {
    this.nodeAddresses = [...options.nodeAddresses];
    this.balance = options.balance ?? "round-robin";
    this.vips = options.vips ?? new LoopbackVips();
    this.connectTimeoutMs = options.connectTimeoutMs ?? 1000;
    this.lastConnectTimeoutMs = options.lastConnectTimeoutMs ?? 5000;
    this.udpIdleTimeoutMs = options.udpIdleTimeoutMs ?? 30_000;
    this.udpMaxSessions = options.udpMaxSessions ?? 4096;
    this.log = options.log ?? silentLog;
  }

  sync(services: ServiceView[]): Promise<void> {
    const run = this.queue.then(() => this.apply(services));
    this.queue = run.catch(() => {});
    return run;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async apply(services: ServiceView[]): Promise<void> {
    if (this.closing !== undefined) throw new Error("the userspace proxy is closed");
    const plan = planUserspace(services, this.nodeAddresses);
    for (const conflict of plan.conflicts) {
      this.log.warn(conflict, "two service ports want the same listener; the first keeps it");
    }

    const routes = new Map<string, MutableRoute>();
    for (const planned of plan.routes.values()) {
      const route = this.routes.get(planned.key) ?? {
        label: planned.label,
        balancer: new Balancer({ mode: this.balance, affinity: planned.affinity }),
      };
      route.label = planned.label;
      route.balancer.setAffinity(planned.affinity);
      route.balancer.setBackends(planned.backends);
      routes.set(planned.key, route);
    }
    this.routes = routes;

    for (const [key, held] of [...this.listeners]) {
      if (plan.listeners.has(key)) continue;
      this.listeners.delete(key);
      await held.listener.close();
      this.log.info({ listener: key }, "proxy stopped listening");
    }
    for (const [key, held] of this.listeners) {
      held.planned = plan.listeners.get(key)!;
      held.listener.route = routes.get(held.planned.route);
      if (held.listener instanceof UdpListener) held.listener.dropStaleSessions();
    }

    const errors: Error[] = [];
    try {
      await this.vips.ensure(plan.vips);
    } catch (err) {
      errors.push(new Error(`cannot hold the VIPs ${plan.vips.join(", ")}: ${describe(err)}`, { cause: err }));
    }

    const opening = [...plan.listeners.values()].filter((p) => !this.listeners.has(p.key));
    await Promise.all(
      opening.map(async (planned) => {
        const route = routes.get(planned.route);
        try {
          const listener = await this.open(planned, route);
          this.listeners.set(planned.key, { planned, listener });
          this.log.info({ listener: planned.key, service: route?.label }, "proxy listening");
        } catch (err) {
          errors.push(new Error(`cannot listen on ${planned.key} for ${route?.label}: ${describe(err)}`, { cause: err }));
        }
      }),
    );

    if (errors.length > 0) {
      for (const err of errors) this.log.warn({ err }, "proxy sync incomplete; retrying on the next sync");
      throw new AggregateError(errors, `userspace proxy sync: ${errors.map((e) => e.message).join("; ")}`);
    }
  }

  private open(planned: PlannedListener, route: Route | undefined): Promise<TcpListener | UdpListener> {
    const { address, port } = planned;
    if (planned.protocol === "UDP") {
      return UdpListener.open({
        address,
        port,
        route,
        idleTimeoutMs: this.udpIdleTimeoutMs,
        maxSessions: this.udpMaxSessions,
        log: this.log,
      });
    }
    return TcpListener.open({
      address,
      port,
      route,
      connectTimeoutMs: this.connectTimeoutMs,
      lastConnectTimeoutMs: this.lastConnectTimeoutMs,
      connections: this.connections,
      log: this.log,
    });
  }

  private async shutdown(): Promise<void> {
    await this.queue;
    const held = [...this.listeners.values()];
    this.listeners.clear();
    this.routes.clear();
    await Promise.all(held.map((h) => h.listener.close()));
    for (const socket of [...this.connections]) socket.destroy();
    this.connections.clear();
    await this.vips.close();
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
