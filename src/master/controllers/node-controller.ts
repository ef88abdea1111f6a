// Watches heartbeats on a timer: marks silent nodes NotReady, and evicts the pods of nodes lost for too long.
import type { Node } from "../../gen/flotilla/v1/node.js";
import type { Pod } from "../../gen/flotilla/v1/pod.js";
import type { Logger } from "../../common/logger.js";
import { isPodTerminal } from "../../api/pod-status.js";
import { readyCondition } from "../api/cluster-service.js";
import type { Registry } from "../registry.js";
import { emptyStatus } from "../scheduler/scheduler.js";
import type { Informer } from "./informer.js";
import { decideNodeHealth } from "./node-lifecycle.js";

export interface NodeControllerDeps {
  nodes: Registry<Node>;
  pods: Registry<Pod>;
  nodeInformer: Informer<Node>;
  podInformer: Informer<Pod>;
  log: Logger;
  gracePeriodMs: number;
  evictionTimeoutMs: number;
  monitorPeriodMs?: number;
  now?: () => Date;
}

export class NodeController {
  private timer?: NodeJS.Timeout;
  private running = false;
  private readonly now: () => Date;

  constructor(private readonly deps: NodeControllerDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.deps.monitorPeriodMs ?? 1000);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const now = this.now();
      for (const node of this.deps.nodeInformer.list()) {
        const decision = decideNodeHealth(node, now.getTime(), this.deps.gracePeriodMs, this.deps.evictionTimeoutMs);
        if (decision.markNotReady) await this.markNotReady(node, now);
        if (decision.evictPods) await this.evictPods(node.metadata!.name, now);
      }
    } catch (e) {
      this.deps.log.warn({ err: e }, "node health check failed; will retry");
    } finally {
      this.running = false;
    }
  }

  private async markNotReady(node: Node, now: Date): Promise<void> {
    const name = node.metadata!.name;
    const updated = await this.deps.nodes.mutate("", name, (current) => {
      const previous = current.status!.conditions.find((c) => c.type === "Ready");
      if (previous?.status !== "True" || previous.lastHeartbeatTime !== node.status!.conditions.find((c) => c.type === "Ready")?.lastHeartbeatTime) {
        return undefined;
      }
      const condition = readyCondition("Unknown", "NodeStatusUnknown", "the agent stopped posting heartbeats", now.toISOString(), previous);
      current.status!.conditions = [...current.status!.conditions.filter((c) => c.type !== "Ready"), condition];
      return current;
    });
    this.deps.nodeInformer.observe(updated);
    this.deps.log.warn({ nodeName: name }, "node is NotReady: heartbeats stopped");
  }

  private async evictPods(nodeName: string, now: Date): Promise<void> {
    for (const pod of this.deps.podInformer.list()) {
      if (pod.spec?.nodeName !== nodeName || isPodTerminal(pod)) continue;
      const updated = await this.deps.pods.mutate(pod.metadata!.namespace, pod.metadata!.name, (current) => {
        if (isPodTerminal(current)) return undefined;
        current.status = {
          ...emptyStatus(),
          ...current.status,
          phase: "Failed",
          reason: "NodeLost",
          message: `node ${nodeName} stopped responding at ${now.toISOString()}`,
        };
        return current;
      });
      this.deps.podInformer.observe(updated);
      this.deps.log.warn({ pod: pod.metadata!.name, nodeName }, "pod evicted: its node is lost");
    }
  }
}
