// `flotilla agent`: joins a cluster, reports the machine, heartbeats, and runs the pods bound to it.
import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { status, type ClientReadableStream } from "@grpc/grpc-js";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { Server as HttpServer } from "node:http";
import { ApiClient, describeError, isCode } from "../api/client.js";
import { bind, newServer } from "../api/serve.js";
import { type Logger, silentLogger } from "../common/logger.js";
import { addressOf, serveMetrics } from "../common/metrics-http.js";
import type { HeartbeatResponse } from "../gen/flotilla/v1/cluster.js";
import type { Pod, PodEvent, PodList, PodStatus } from "../gen/flotilla/v1/pod.js";
import { describeNode, readHardware, sampleUsage } from "./capacity.js";
import { DEFAULT_BACKOFF, type BackoffPolicy } from "./container-plan.js";
import { joinCluster, JoinRefusedError, loadIdentity, type NodeIdentity, saveIdentity } from "./join.js";
import { addAgentService } from "./logs-server.js";
import { PodWorkers } from "./pod-worker.js";
import { createRuntime, type RuntimeKind } from "./runtime/index.js";
import type { Runtime } from "./runtime/runtime.js";
import type * as grpc from "@grpc/grpc-js";
import { splitHostPort } from "../api/address.js";
import type { LocalTarget } from "../net/local-backends.js";
import { NodeNetwork, type LocalTargetSource, type NodeNetworkOptions } from "../net/node-network.js";

export interface AgentOptions {
  servers: string[];
  token: string;
  dataDir: string;
  driver: RuntimeKind;
  /** The node's address: ports are published here, and masters reach the agent here. */
  address: string;
  nodeName?: string;
  /** Port for the agent's own gRPC endpoint (logs); 0 picks one. */
  apiPort?: number;
  metricsListen?: string;
  labels?: Record<string, string>;
  backoff?: BackoffPolicy;
  log?: Logger;
  /** Process driver: host ports for pods come from this range. */
  portRange?: [number, number];
  /** The node's service proxy, DNS and ingress (src/net); without it the node serves no services. */
  network?: Omit<NodeNetworkOptions, "client" | "nodeAddress" | "nodeName" | "localTargets" | "log">;
}

export { JoinRefusedError };

export class Agent {
  readonly nodeName: string;
  readonly metrics = new Registry();
  private readonly client: ApiClient;
  private runtime?: Runtime;
  private workers?: PodWorkers;
  private identity?: NodeIdentity;
  private server?: grpc.Server;
  private metricsServer?: HttpServer;
  private heartbeatTimer?: NodeJS.Timeout;
  private watchStream?: ClientReadableStream<PodEvent>;
  private stopped = false;
  private daemonEndpoint = "";
  private readonly log: Logger;
  private readonly containerStarts: Counter;
  /** The node's service proxy, DNS and ingress, when enabled. */
  network?: NodeNetwork;

  constructor(private readonly o: AgentOptions) {
    this.nodeName = (o.nodeName ?? hostname()).toLowerCase();
    this.log = o.log ?? silentLogger();
    this.client = new ApiClient({ servers: o.servers, token: "", timeoutMs: 10_000 });
    mkdirSync(o.dataDir, { recursive: true });
    collectDefaultMetrics({ register: this.metrics, prefix: "flotilla_agent_" });
    this.containerStarts = new Counter({
      name: "flotilla_agent_container_starts_total",
      help: "Container starts by driver and result.",
      labelNames: ["driver", "result"],
      registers: [this.metrics],
    });
    const workers = () => this.workers;
    new Gauge({
      name: "flotilla_agent_pods",
      help: "Pods bound to this node.",
      registers: [this.metrics],
      collect() {
        this.set(workers()?.podCount() ?? 0);
      },
    });
  }

  /** Joins (or reuses the saved identity), then starts serving, heartbeating and running pods. */
  async start(): Promise<void> {
    this.runtime = createRuntime(this.o.driver, { nodeName: this.nodeName, stateDir: join(this.o.dataDir, "process"), portRange: this.o.portRange });
    const [facts, runtimeVersion] = await Promise.all([readHardware(this.o.dataDir), this.runtime.version()]);
    const node = describeNode(this.nodeName, this.o.address, facts, runtimeVersion, this.o.labels ?? {});
    await this.startServer();
    node.status!.daemonEndpoint = this.daemonEndpoint;
    this.identity = loadIdentity(this.o.dataDir, this.nodeName);
    if (this.identity) {
      this.client.setToken(this.identity.credential);
      if (!(await this.heartbeat(true))) this.identity = undefined;
    }
    if (!this.identity) {
      this.identity = await joinCluster(this.client, this.o.token, node);
      saveIdentity(this.o.dataDir, this.identity);
      this.log.info({ nodeName: this.nodeName }, "joined the cluster");
    }
    this.workers = new PodWorkers({
      nodeName: this.nodeName,
      nodeAddress: this.o.address,
      runtime: this.runtime,
      reporter: { report: (pod, st) => this.reportStatus(pod, st) },
      log: this.log,
      backoff: this.o.backoff ?? DEFAULT_BACKOFF,
      onContainerStart: (result) => this.containerStarts.inc({ driver: this.o.driver, result }),
      clusterDns: this.clusterDns(),
      beforeStop: (pod) => this.network?.drainPod(pod) ?? Promise.resolve(),
    });
    this.workers.start();
    this.scheduleHeartbeat();
    void this.watchPods();
    if (this.o.network) {
      this.network = new NodeNetwork({
        ...this.o.network,
        client: this.client,
        nodeAddress: this.o.address,
        nodeName: this.nodeName,
        localTargets: localTargetsOf(this.runtime),
        log: this.log.child({ component: "network" }),
      });
      await this.network.start();
    }
  }

  /** The cluster DNS as containers' resolver: only on port 53, since a resolv.conf cannot name another port. */
  private clusterDns(): { nameserver: string; domain: string } | undefined {
    const listen = this.o.network?.dnsListen;
    if (!listen) return undefined;
    const [host, port] = splitHostPort(listen);
    return port === 53 ? { nameserver: host, domain: this.o.network?.domain ?? "flotilla.local" } : undefined;
  }

  /** host:port of /metrics, when served. */
  get metricsAddress(): string {
    return this.metricsServer ? addressOf(this.metricsServer) : "";
  }

  get endpoint(): string {
    return this.daemonEndpoint;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.heartbeatTimer);
    this.watchStream?.cancel();
    await this.network?.stop();
    this.workers?.stop();
    this.server?.forceShutdown();
    await new Promise<void>((resolve) => (this.metricsServer ? this.metricsServer.close(() => resolve()) : resolve()));
    await this.runtime?.close();
    this.client.close();
  }

  private async startServer(): Promise<void> {
    this.server = newServer();
    addAgentService(this.server, this.runtime!, () => this.identity?.agentApiToken ?? "");
    const port = await bind(this.server, `${this.o.address}:${this.o.apiPort ?? 0}`);
    this.daemonEndpoint = `${this.o.address}:${port}`;
    if (this.o.metricsListen) {
      const [host, mport] = splitHostPort(this.o.metricsListen);
      this.metricsServer = await serveMetrics(this.metrics, host, mport);
    }
  }

  /** Returns false when the master no longer knows this node's credential (the agent must join again). */
  private async heartbeat(firstTime = false): Promise<boolean> {
    try {
      const usage = await sampleUsage();
      const response = await this.client.call<HeartbeatResponse>((s, md, o, cb) =>
        s.cluster.heartbeat({ nodeName: this.nodeName, usage, daemonEndpoint: this.daemonEndpoint }, md, o, cb),
      );
      if (this.identity && response.agentApiToken) this.identity.agentApiToken = response.agentApiToken;
      if (this.identity) this.identity.heartbeatIntervalSeconds = response.heartbeatIntervalSeconds;
      return true;
    } catch (e) {
      if (isCode(e, status.UNAUTHENTICATED) || isCode(e, status.NOT_FOUND)) {
        this.log.warn({ err: describeError(e) }, "the master does not know this node's credential; joining again");
        return false;
      }
      if (firstTime) throw e;
      this.log.warn({ err: describeError(e) }, "heartbeat failed; pods keep running");
      return true;
    }
  }

  private scheduleHeartbeat(): void {
    const seconds = this.identity?.heartbeatIntervalSeconds || 5;
    this.heartbeatTimer = setTimeout(async () => {
      if (this.stopped) return;
      const known = await this.heartbeat();
      if (!known) await this.rejoin();
      if (!this.stopped) this.scheduleHeartbeat();
    }, seconds * 1000);
  }

  private async rejoin(): Promise<void> {
    try {
      const facts = await readHardware(this.o.dataDir);
      const node = describeNode(this.nodeName, this.o.address, facts, await this.runtime!.version(), this.o.labels ?? {});
      node.status!.daemonEndpoint = this.daemonEndpoint;
      this.identity = await joinCluster(this.client, this.o.token, node);
      saveIdentity(this.o.dataDir, this.identity);
    } catch (e) {
      this.log.error({ err: describeError(e) }, "could not join again; will retry");
      if (this.identity) this.client.setToken(this.identity.credential);
    }
  }

  /** List then watch this node's pods, forever; on any failure, list again after a pause. */
  private async watchPods(): Promise<void> {
    let delayMs = 250;
    const fieldSelector = `spec.nodeName=${this.nodeName}`;
    while (!this.stopped) {
      try {
        const list = await this.client.call<PodList>((s, md, o, cb) => s.pods.listPods({ namespace: "", labelSelector: "", fieldSelector }, md, o, cb));
        this.workers!.setPods(list.items);
        delayMs = 250;
        await this.followWatch(fieldSelector, list.resourceVersion);
      } catch (e) {
        if (this.stopped) return;
        if (isCode(e, status.UNAVAILABLE)) this.client.failover();
        this.log.warn({ err: describeError(e) }, "lost the pod watch; pods keep running, listing again");
      }
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(delayMs * 2, 5000);
    }
  }

  private followWatch(fieldSelector: string, resourceVersion: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = this.client.stream((s, md) => s.pods.watchPods({ namespace: "", labelSelector: "", fieldSelector, resourceVersion }, md));
      this.watchStream = stream;
      stream.on("data", (event: PodEvent) => {
        if (!event.object) return;
        if (event.type === "DELETED") this.workers!.deletePod(event.object);
        else this.workers!.upsertPod(event.object);
      });
      stream.on("error", reject);
      stream.on("end", () => reject(new Error("watch ended")));
    });
  }

  private async reportStatus(pod: Pod, st: PodStatus): Promise<void> {
    const meta = pod.metadata!;
    try {
      await this.client.call<Pod>((s, md, o, cb) =>
        s.pods.updatePodStatus({ apiVersion: "", kind: "", metadata: { ...meta, resourceVersion: "" }, status: st }, md, o, cb),
      );
    } catch (e) {
      // A pod deleted meanwhile needs no status; the DELETED event is on its way.
      if (!isCode(e, status.NOT_FOUND)) throw e;
    }
  }

  /** For tests: wait until the pod workers have settled. */
  async settle(): Promise<void> {
    await this.workers?.syncNow();
  }
}

/** This node's running containers' published ports and where each container answers them (Docker only). */
function localTargetsOf(runtime: Runtime): LocalTargetSource {
  return {
    async list() {
      const targets: LocalTarget[] = [];
      for (const c of await runtime.list()) {
        if (c.state !== "running" || !c.address) continue;
        for (const p of c.ports) {
          if (p.hostPort > 0) targets.push({ pod: `${c.namespace}/${c.podName}`, protocol: p.protocol, hostPort: p.hostPort, address: c.address, port: p.containerPort });
        }
      }
      return targets;
    },
    watch: (onChange) => runtime.watch(onChange),
  };
}
