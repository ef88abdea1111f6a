// `flotilla master`: the store, the API server and, while leading, the control plane.
import { mkdirSync, readFileSync, existsSync } from "node:fs";
import { writeFileDurably } from "../common/durable-file.js";
import type { Server as HttpServer } from "node:http";
import { join } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { splitHostPort } from "../api/address.js";
import { bind, newServer } from "../api/serve.js";
import { type Logger, silentLogger } from "../common/logger.js";
import { addressOf, serveMetrics } from "../common/metrics-http.js";
import { MemoryStore, type Store } from "../store/index.js";
import { addMasterServices, type ApiDeps } from "./api/server.js";
import { type ClusterMembership, inMemoryMembership } from "./api/cluster-service.js";
import type { EtcdBackend } from "../store/etcd/backend.js";
import { header } from "../store/etcd/convert.js";
import { etcdServices } from "../store/etcd/proto.js";
import { addEtcdServices } from "../store/etcd/server.js";
import { addEtcdAuthService, etcdTokenCheck, requireEtcdToken } from "./etcd-auth.js";
import { parseServiceRange, ServiceAllocator } from "./service-allocator.js";
import { Credentials, randomToken } from "./auth/tokens.js";
import { ControlPlane, type Leadership, soloLeadership } from "./control-plane.js";
import { DeploymentKind, EndpointsKind, IngressKind, NodeKind, PodKind, ServiceKind } from "./kinds.js";
import { MasterMetrics } from "./metrics.js";
import { Registry } from "./registry.js";
import type { ScoringStrategy } from "./scheduler/score.js";

export interface MasterOptions {
  /** host:port for the gRPC API. Port 0 picks a free one. */
  listen: string;
  dataDir: string;
  /** host:port for Prometheus /metrics; empty disables it. */
  metricsListen?: string;
  scoring?: ScoringStrategy;
  heartbeatIntervalSeconds?: number;
  nodeGracePeriodSeconds?: number;
  podEvictionTimeoutSeconds?: number;
  /** How often the leader compacts the store's history (default 300 s), keeping the newest retainRevisions (default 10 000). */
  compactionIntervalSeconds?: number;
  retainRevisions?: number;
  store?: Store;
  leadership?: Leadership;
  /** The masters behind the store (default: this one, in memory). */
  membership?: ClusterMembership;
  /** The store's etcd v3 API: served on the client port behind etcd's login, and on etcdListen without one. */
  etcd?: EtcdBackend;
  /**
   * host:port for an extra listener of etcd's v3 API without authentication (etcd's own default), for tools that
   * cannot log in and for benchmarks: bind it to a trusted address such as loopback.
   */
  etcdListen?: string;
  /** Services' virtual IPs come from this range (default 10.96.0.0/16). */
  serviceCidr?: string;
  /** How often the leader gives back VIPs and NodePorts no service holds (default 60 s; a leak is released on its second sighting). */
  allocationRepairIntervalSeconds?: number;
  log?: Logger;
}

export const DEFAULT_SERVICE_CIDR = "10.96.0.0/16";

export const ADMIN_TOKEN_FILE = "admin.token";

/** Reads the admin token from the data directory, creating it (mode 0600) on first start. */
export function loadOrCreateAdminToken(dataDir: string): string {
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  const token = `admin.${randomToken(32)}`;
  writeFileDurably(path, `${token}\n`, 0o600);
  return token;
}

const AGENT_API_TOKEN_KEY = "/registry/secrets/agent-api-token";

/**
 * Reads a secret from the store, creating it (compare-and-swap, so concurrent masters agree) when absent. Retries
 * while the store has no leader yet, as when masters start together.
 */
async function ensureSecret(store: Store, key: string, make: () => string): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const existing = await store.get(key);
      if (existing) return new TextDecoder().decode(existing.value);
      const created = await store.compareAndSwap(key, 0, new TextEncoder().encode(make()));
      if (created.current) return new TextDecoder().decode(created.current.value);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export class Master {
  readonly metrics = new MasterMetrics();
  readonly store: Store;
  readonly adminToken: string;
  readonly controlPlane: ControlPlane;
  private server?: grpc.Server;
  private etcdServer?: grpc.Server;
  /** host:port of the etcd v3 API, when served. */
  etcdAddress = "";
  private metricsServer?: HttpServer;
  private unsubscribe?: () => void;
  private readonly log: Logger;
  port = 0;

  constructor(private readonly options: MasterOptions) {
    mkdirSync(options.dataDir, { recursive: true });
    this.log = options.log ?? silentLogger();
    this.store = options.store ?? new MemoryStore();
    this.adminToken = loadOrCreateAdminToken(options.dataDir);
    const pods = new Registry(this.store, PodKind);
    const nodes = new Registry(this.store, NodeKind);
    const deployments = new Registry(this.store, DeploymentKind);
    const services = new Registry(this.store, ServiceKind);
    const endpoints = new Registry(this.store, EndpointsKind);
    const ingresses = new Registry(this.store, IngressKind);
    this.allocator = new ServiceAllocator(this.store, parseServiceRange(options.serviceCidr ?? DEFAULT_SERVICE_CIDR));
    this.controlPlane = new ControlPlane({
      pods, nodes, deployments, services, endpoints, metrics: this.metrics, log: this.log,
      scoring: options.scoring ?? "least-allocated",
      nodeGracePeriodMs: (options.nodeGracePeriodSeconds ?? 40) * 1000,
      podEvictionTimeoutMs: (options.podEvictionTimeoutSeconds ?? 60) * 1000,
      store: this.store,
      allocator: this.allocator,
      allocationRepairIntervalMs: (options.allocationRepairIntervalSeconds ?? 60) * 1000,
      compaction: {
        intervalMs: (options.compactionIntervalSeconds ?? 300) * 1000,
        retainRevisions: options.retainRevisions ?? 10_000,
      },
    });
    this.registries = { pods, nodes, deployments, services, endpoints, ingresses };
  }

  private readonly registries: Pick<ApiDeps, "pods" | "nodes" | "deployments" | "services" | "endpoints" | "ingresses">;
  private readonly allocator: ServiceAllocator;

  async start(): Promise<void> {
    this.server = newServer();
    const credentials = new Credentials(this.store, this.adminToken);
    addMasterServices(this.server, {
      ...this.registries,
      allocator: this.allocator,
      credentials,
      membership: this.options.membership ?? inMemoryMembership,
      metrics: this.metrics,
      log: this.log.child({ component: "api" }),
      heartbeatIntervalSeconds: this.options.heartbeatIntervalSeconds ?? 5,
      // Shared by every master (it lives in the store), so any master can reach any agent.
      agentApiToken: await ensureSecret(this.store, AGENT_API_TOKEN_KEY, () => `agentapi.${randomToken(32)}`),
      now: () => new Date(),
    });
    const etcd = this.options.etcd;
    if (etcd) {
      // etcd's API on the client port too, behind etcd's own login (user root, password an admin token).
      addEtcdServices(this.server, etcd, { guard: requireEtcdToken(etcdTokenCheck(credentials)) });
      addEtcdAuthService(this.server, etcdServices().Auth.service, credentials, () => header(etcd, etcd.currentRevision()));
    }
    this.port = await bind(this.server, this.options.listen);
    if (this.options.etcd && this.options.etcdListen) {
      this.etcdServer = newServer();
      addEtcdServices(this.etcdServer, this.options.etcd);
      const etcdPort = await bind(this.etcdServer, this.options.etcdListen);
      this.etcdAddress = `${splitHostPort(this.options.etcdListen)[0]}:${etcdPort}`;
    }
    if (this.options.metricsListen) {
      const [host, port] = splitHostPort(this.options.metricsListen);
      this.metricsServer = await serveMetrics(this.metrics.registry, host, port);
    }
    this.unsubscribe = (this.options.leadership ?? soloLeadership).subscribe((leader) => this.controlPlane.onLeadership(leader));
    this.log.info({ listen: this.address }, "master serving");
  }

  /** host:port of /metrics, when served. */
  get metricsAddress(): string {
    return this.metricsServer ? addressOf(this.metricsServer) : "";
  }

  get address(): string {
    return `${splitHostPort(this.options.listen)[0]}:${this.port}`;
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.controlPlane.stop();
    this.server?.forceShutdown();
    this.etcdServer?.forceShutdown();
    await new Promise<void>((resolve) => (this.metricsServer ? this.metricsServer.close(() => resolve()) : resolve()));
    await this.store.close();
  }
}
