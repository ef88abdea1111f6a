// What runs only on the leader: informers, the scheduler, and the controllers. Leadership decides when it runs;
// a single master always leads, and the Raft-backed masters (a later issue) hand in their own Leadership so the
// control plane stops the moment the node steps down.
import type { Deployment } from "../gen/flotilla/v1/deployment.js";
import type { Node } from "../gen/flotilla/v1/node.js";
import type { Pod } from "../gen/flotilla/v1/pod.js";
import type { Logger } from "../common/logger.js";
import { DeploymentController } from "./controllers/deployment-controller.js";
import { EndpointsController } from "./controllers/endpoints-controller.js";
import type { Endpoints, Service } from "../gen/flotilla/v1/service.js";
import { Informer } from "./controllers/informer.js";
import { NodeController } from "./controllers/node-controller.js";
import { Compactor, type CompactorOptions } from "./controllers/compactor.js";
import { AllocationRepair } from "./controllers/allocation-repair.js";
import type { ServiceAllocator } from "./service-allocator.js";
import type { Store } from "../store/index.js";
import type { MasterMetrics } from "./metrics.js";
import type { Registry } from "./registry.js";
import { Scheduler } from "./scheduler/scheduler.js";
import type { ScoringStrategy } from "./scheduler/score.js";

export interface Leadership {
  /** Calls back with true when this master becomes leader and false when it stops being leader. */
  subscribe(onChange: (leader: boolean) => void): () => void;
}

/** The one-master case: leader from the start, for ever. */
export const soloLeadership: Leadership = {
  subscribe(onChange) {
    queueMicrotask(() => onChange(true));
    return () => {};
  },
};

export interface ControlPlaneOptions {
  pods: Registry<Pod>;
  nodes: Registry<Node>;
  deployments: Registry<Deployment>;
  services: Registry<Service>;
  endpoints: Registry<Endpoints>;
  metrics: MasterMetrics;
  log: Logger;
  scoring: ScoringStrategy;
  nodeGracePeriodMs: number;
  podEvictionTimeoutMs: number;
  /** The store, for compacting its history on the leader. */
  store: Store;
  compaction: CompactorOptions;
  /** Services' VIPs and NodePorts: the leader gives back those no service holds, every allocationRepairIntervalMs. */
  allocator: ServiceAllocator;
  allocationRepairIntervalMs: number;
}

interface Running {
  stop(): void;
}

export class ControlPlane {
  private running?: Running;
  private starting?: Promise<void>;
  private leader = false;

  constructor(private readonly options: ControlPlaneOptions) {}

  onLeadership(leader: boolean): void {
    this.leader = leader;
    if (leader && !this.running && !this.starting) {
      this.starting = this.start().finally(() => (this.starting = undefined));
    } else if (!leader) this.stop();
  }

  stop(): void {
    this.running?.stop();
    this.running = undefined;
  }

  /** Resolves when the control plane is up (tests wait on it). */
  async ready(): Promise<void> {
    await this.starting;
  }

  private async start(): Promise<void> {
    const o = this.options;
    const podInformer = new Informer(o.pods, o.log);
    const nodeInformer = new Informer(o.nodes, o.log);
    const deploymentInformer = new Informer(o.deployments, o.log);
    const scheduler = new Scheduler({ pods: o.pods, podInformer, nodeInformer, metrics: o.metrics, log: o.log.child({ component: "scheduler" }), strategy: o.scoring });
    const deploymentController = new DeploymentController({
      deployments: o.deployments, pods: o.pods, deploymentInformer, podInformer, log: o.log.child({ component: "deployment-controller" }),
    });
    const nodeController = new NodeController({
      nodes: o.nodes, pods: o.pods, nodeInformer, podInformer, log: o.log.child({ component: "node-controller" }),
      gracePeriodMs: o.nodeGracePeriodMs, evictionTimeoutMs: o.podEvictionTimeoutMs,
    });
    const serviceInformer = new Informer(o.services, o.log);
    const endpointsController = new EndpointsController({
      endpoints: o.endpoints, serviceInformer, podInformer, log: o.log.child({ component: "endpoints-controller" }),
    });
    const gauges = setInterval(() => this.updateGauges(podInformer, nodeInformer), 1000);
    await Promise.all([podInformer.start(), nodeInformer.start(), deploymentInformer.start(), serviceInformer.start()]);
    scheduler.start();
    deploymentController.start();
    nodeController.start();
    endpointsController.start();
    const compactor = new Compactor(o.store, o.log.child({ component: "compactor" }), o.compaction);
    compactor.start();
    const allocationRepair = new AllocationRepair({
      allocator: o.allocator, services: o.services, log: o.log.child({ component: "allocation-repair" }), intervalMs: o.allocationRepairIntervalMs,
    });
    allocationRepair.start();
    this.running = {
      stop: () => {
        clearInterval(gauges);
        for (const part of [scheduler, deploymentController, nodeController, endpointsController, compactor, allocationRepair, podInformer, nodeInformer, deploymentInformer, serviceInformer]) part.stop();
        o.log.info("control plane stopped");
      },
    };
    o.log.info("control plane started: scheduler and controllers are running");
    // Leadership may have been lost while the informers were listing.
    if (!this.leader) this.stop();
  }

  private updateGauges(pods: Informer<Pod>, nodes: Informer<Node>): void {
    const { podsByPhase, nodesReady } = this.options.metrics;
    podsByPhase.reset();
    for (const pod of pods.list()) podsByPhase.inc({ phase: pod.status?.phase || "Pending" });
    nodesReady.reset();
    for (const node of nodes.list()) {
      nodesReady.inc({ ready: node.status?.conditions.find((c) => c.type === "Ready")?.status ?? "Unknown" });
    }
  }
}
