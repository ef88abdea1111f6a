// Everything a node does for services, started by the agent: the proxy (nftables or userspace), the cluster DNS
// server and, when asked for, the HTTP ingress, all fed by one ClusterWatch over the masters' API.
//
// Proxy mode: "nftables" and "userspace" are taken as asked (failing loudly if nftables cannot work); "auto" (the
// default) uses nftables where `nft` works and the agent is root, and otherwise userspace, with a log line that
// says why.
import { splitHostPort } from "../api/address.js";
import type { ApiClient } from "../api/client.js";
import { ClusterWatch } from "./cluster-watch.js";
import { DnsServer } from "./dns-server.js";
import { IngressServer } from "./ingress-server.js";
import { preferLocalTargets, type LocalTarget } from "./local-backends.js";
import { NftablesProxy, nftablesAvailable } from "./nftables-proxy.js";
import { upstreamFromResolvConf } from "./resolv-conf.js";
import type { ClusterNetworkView, ServiceProxy, ServiceView } from "./types.js";
import { UserspaceProxy } from "./userspace-proxy.js";
import { DummyInterfaceVips, isLoopbackAddress, LoopbackVips, type VipAddresses } from "./vip-addresses.js";
import { readFileSync } from "node:fs";

export type ProxyMode = "auto" | "nftables" | "userspace";

/** After a deleted pod stops being a backend here, how long other nodes get to apply the same endpoints update. */
export const DRAIN_DELAY_MS = 1000;
/** The longest a deleted pod's stop waits for its endpoints removal. */
export const DRAIN_TIMEOUT_MS = 5000;

export const PROXY_MODES: readonly ProxyMode[] = ["auto", "nftables", "userspace"];

export interface NodeNetworkLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** What the node's runtime says about its running containers' published ports (Docker); see local-backends.ts. */
export interface LocalTargetSource {
  list(): Promise<LocalTarget[]>;
  /** Calls onChange when containers may have changed; returns an unsubscribe function. */
  watch(onChange: () => void): () => void;
}

export interface NodeNetworkOptions {
  client: ApiClient;
  /** The node's address: NodePorts answer here. */
  nodeAddress: string;
  /** The node's name, as endpoints name it: its own backends are dialled through `localTargets`. */
  nodeName?: string;
  localTargets?: LocalTargetSource;
  proxyMode: ProxyMode;
  /** host:port for the cluster DNS server; "" or undefined: no DNS server. */
  dnsListen?: string;
  domain?: string;
  /** Port for the HTTP ingress on the node's address; undefined: none. */
  ingressPort?: number;
  log: NodeNetworkLog;
}

export class NodeNetwork {
  private proxy?: ServiceProxy;
  private dns?: DnsServer;
  private ingress?: IngressServer;
  private watch?: ClusterWatch;
  private syncing: Promise<void> = Promise.resolve();
  private syncQueued = false;
  private unwatchLocal?: () => void;
  /** The cluster's view as this node dials it (its own backends at their containers' addresses). */
  private view: ClusterNetworkView = { services: [], ingresses: [] };
  /** Pods that are backends in the view the proxy last applied ("namespace/name"). */
  private appliedBackends = new Set<string>();
  /** When each pod stopped being a backend in an applied view (ms), kept for a minute. */
  private readonly removedAt = new Map<string, number>();
  /** Woken after every applied sync, and on stop. */
  private syncWaiters = new Set<() => void>();
  private stopped = false;

  constructor(private readonly o: NodeNetworkOptions) {}

  get proxyMode(): string {
    return this.proxy?.mode ?? "";
  }

  get dnsPort(): number {
    return this.dns?.port ?? 0;
  }

  get ingressListenPort(): number {
    return this.ingress?.port ?? 0;
  }

  async start(): Promise<void> {
    this.proxy = await this.chooseProxy();
    const watch = new ClusterWatch(this.o.client, () => this.resync(), this.o.log);
    this.watch = watch;
    if (this.o.dnsListen) {
      const [address, port] = splitHostPort(this.o.dnsListen);
      const upstream = hostUpstream(address);
      this.dns = new DnsServer({ listen: { address, port }, lookup: () => watch.current().services, domain: this.o.domain, upstream, log: this.o.log });
      await this.dns.listen();
    }
    if (this.o.ingressPort !== undefined) {
      this.ingress = new IngressServer({ listen: { address: this.o.nodeAddress, port: this.o.ingressPort }, lookup: () => this.view, log: this.o.log });
      await this.ingress.listen();
    }
    this.unwatchLocal = this.o.localTargets?.watch(() => this.resync());
    watch.start();
    this.o.log.info({ proxyMode: this.proxy.mode, dns: this.dns ? `${this.dns.address}:${this.dns.port}` : "off", ingress: this.ingress ? this.ingress.port : "off" }, "node network started");
  }

  async stop(): Promise<void> {
    // Pending drains end now: no sync will come any more, and the proxy's rules go away with it.
    this.stopped = true;
    this.wakeWaiters();
    this.watch?.stop();
    this.unwatchLocal?.();
    await this.syncing;
    await Promise.allSettled([this.proxy?.close(), this.dns?.close(), this.ingress?.close()]);
  }

  /** Syncs one at a time, always to the newest view; changes that arrive meanwhile fold into one more sync. */
  private resync(): void {
    if (this.syncQueued) return;
    this.syncQueued = true;
    this.syncing = this.syncing
      .then(async () => {
        this.syncQueued = false;
        const cluster = this.watch?.current();
        if (!cluster) return;
        this.view = { ...cluster, services: await this.dialledServices(cluster) };
        await this.proxy?.sync(this.view.services);
        this.noteApplied(this.view.services);
      })
      .catch((e: unknown) => this.o.log.warn({ err: e instanceof Error ? e.message : String(e) }, "proxy sync failed; the next change retries"));
  }

  /**
   * Resolves once no new connection on this node can go to `pod` (its endpoints removal has reached the proxy),
   * then lets DRAIN_DELAY_MS pass since it stopped being one, for other nodes' proxies to apply the same update.
   * The agent calls it before stopping a deleted pod's containers, so that a pod going away refuses no one.
   * Gives up (with a log line) after timeoutMs: masters that cannot be reached must not keep a pod from stopping.
   * Returns at once when the node network stops (the agent is shutting down).
   */
  async drainPod(pod: string, timeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.appliedBackends.has(pod)) {
      if (this.stopped) return;
      const left = deadline - Date.now();
      if (left <= 0) {
        this.o.log.warn({ pod, timeoutMs }, "the pod is still a service backend on this node; stopping it anyway");
        return;
      }
      await this.nextApplied(left);
    }
    const removed = this.removedAt.get(pod);
    if (removed === undefined) return;
    const until = Math.min(removed + DRAIN_DELAY_MS, deadline);
    while (!this.stopped && Date.now() < until) await this.nextApplied(until - Date.now());
  }

  private noteApplied(services: ServiceView[]): void {
    const now = Date.now();
    const backends = new Set(services.flatMap((s) => s.ports.flatMap((p) => p.backends.map((b) => b.pod))));
    for (const pod of this.appliedBackends) if (!backends.has(pod)) this.removedAt.set(pod, now);
    for (const pod of backends) this.removedAt.delete(pod);
    for (const [pod, at] of this.removedAt) if (at < now - 60_000) this.removedAt.delete(pod);
    this.appliedBackends = backends;
    this.wakeWaiters();
  }

  private wakeWaiters(): void {
    const waiters = [...this.syncWaiters];
    this.syncWaiters.clear();
    for (const wake of waiters) wake();
  }

  /** Resolves after the next applied sync, on stop, or after timeoutMs, whichever comes first. */
  private nextApplied(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.syncWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, timeoutMs);
      this.syncWaiters.add(wake);
    });
  }

  private async dialledServices(cluster: ClusterNetworkView): Promise<ClusterNetworkView["services"]> {
    const source = this.o.localTargets;
    if (!source || !this.o.nodeName) return cluster.services;
    try {
      return preferLocalTargets(cluster.services, this.o.nodeName, await source.list());
    } catch (e) {
      // Published ports still work (through Docker's port publishing); only the shortcut is lost until the next change.
      this.o.log.warn({ err: e instanceof Error ? e.message : String(e) }, "could not list this node's containers; dialling its pods at their published ports");
      return cluster.services;
    }
  }

  private async chooseProxy(): Promise<ServiceProxy> {
    const mode = this.o.proxyMode;
    if (mode === "nftables" || mode === "auto") {
      const available = await nftablesAvailable();
      if (available.ok) return new NftablesProxy({ log: this.o.log });
      if (mode === "nftables") throw new Error(`--proxy-mode nftables: ${available.reason}`);
      this.o.log.info({ reason: available.reason }, "proxy: nftables is not usable here, using the userspace proxy");
    }
    return new UserspaceProxy({ nodeAddresses: [this.o.nodeAddress], vips: this.vips(), log: this.o.log });
  }

  private vips(): VipAddresses {
    return new MixedVips(this.o.log);
  }
}

/**
 * VIPs in 127.0.0.0/8 (a cluster without root) bind as they are; any others go on the dummy interface, which is
 * created only once such a VIP appears (and needs root).
 */
class MixedVips implements VipAddresses {
  private readonly loopback = new LoopbackVips();
  private dummy?: DummyInterfaceVips;

  constructor(private readonly log: NodeNetworkLog) {}

  async ensure(addresses: readonly string[]): Promise<void> {
    const others = addresses.filter((a) => !isLoopbackAddress(a));
    await this.loopback.ensure(addresses.filter(isLoopbackAddress));
    if (others.length === 0 && !this.dummy) return;
    this.dummy ??= new DummyInterfaceVips({ log: this.log });
    await this.dummy.ensure(others);
  }

  async close(): Promise<void> {
    await Promise.all([this.loopback.close(), this.dummy?.close()]);
  }
}

/** The node's own resolver, for names outside the cluster (never ourselves: that would loop). */
function hostUpstream(own: string): { address: string; port: number } | undefined {
  try {
    return upstreamFromResolvConf(readFileSync("/etc/resolv.conf", "utf8"), [own]);
  } catch {
    return undefined;
  }
}
