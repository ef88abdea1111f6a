// The scheduler's I/O shell: it keeps a queue of unbound pods, decides with schedulePod over the informers'
// snapshot, and binds with a compare-and-swap on the pod. A pod that fits nowhere gets PodScheduled=False with
// the reason, and is retried when nodes change or pods go away, and on a slow timer.
import type { Condition } from "../../gen/flotilla/v1/meta.js";
import type { Node } from "../../gen/flotilla/v1/node.js";
import type { Pod } from "../../gen/flotilla/v1/pod.js";
import type { Logger } from "../../common/logger.js";
import { isPodTerminal } from "../../api/pod-status.js";
import type { Informer } from "../controllers/informer.js";
import { objectKey } from "../controllers/informer.js";
import { WorkQueue } from "../controllers/work-queue.js";
import type { MasterMetrics } from "../metrics.js";
import type { Registry } from "../registry.js";
import type { NodeInfo } from "./filter.js";
import { add, hostPortsOf, nodeAllocatable, podRequests, ZERO } from "./resources.js";
import { schedulePod } from "./schedule.js";
import type { ScoringStrategy } from "./score.js";

export interface SchedulerDeps {
  pods: Registry<Pod>;
  podInformer: Informer<Pod>;
  nodeInformer: Informer<Node>;
  metrics: MasterMetrics;
  log: Logger;
  strategy: ScoringStrategy;
  retryIntervalMs?: number;
  now?: () => Date;
}

const needsScheduling = (pod: Pod) => !pod.spec?.nodeName && !isPodTerminal(pod);

export class Scheduler {
  private readonly queue: WorkQueue;
  private retryTimer?: NodeJS.Timeout;
  private readonly now: () => Date;

  constructor(private readonly deps: SchedulerDeps) {
    this.now = deps.now ?? (() => new Date());
    this.queue = new WorkQueue(
      (key) => this.scheduleOne(key),
      (key, e) => deps.log.warn({ err: e, pod: key }, "scheduling failed; will retry"),
    );
    deps.podInformer.addHandlers({
      onAdd: (pod) => needsScheduling(pod) && this.queue.add(objectKey(pod)),
      onUpdate: (_old, pod) => needsScheduling(pod) && this.queue.add(objectKey(pod)),
      // A pod going away frees resources: everything unbound gets another try.
      onDelete: () => this.retryAll(),
    });
    deps.nodeInformer.addHandlers({ onAdd: () => this.retryAll(), onUpdate: (a, b) => nodeChanged(a, b) && this.retryAll() });
  }

  start(): void {
    this.queue.start();
    this.retryAll();
    this.retryTimer = setInterval(() => this.retryAll(), this.deps.retryIntervalMs ?? 10_000);
  }

  stop(): void {
    clearInterval(this.retryTimer);
    this.queue.stop();
  }

  private retryAll(): void {
    for (const pod of this.deps.podInformer.list()) if (needsScheduling(pod)) this.queue.add(objectKey(pod));
  }

  private snapshot(): NodeInfo[] {
    const infos = new Map<string, NodeInfo>();
    for (const node of this.deps.nodeInformer.list()) {
      infos.set(node.metadata!.name, { node, allocatable: nodeAllocatable(node), requested: ZERO, hostPorts: new Set() });
    }
    for (const pod of this.deps.podInformer.list()) {
      const info = infos.get(pod.spec?.nodeName ?? "");
      if (!info || isPodTerminal(pod)) continue;
      info.requested = add(info.requested, podRequests(pod));
      for (const p of hostPortsOf(pod)) info.hostPorts.add(p);
    }
    return [...infos.values()];
  }

  private async scheduleOne(key: string): Promise<void> {
    const pod = this.deps.podInformer.get(key);
    if (!pod || !needsScheduling(pod)) return;
    const decision = schedulePod(pod, this.snapshot(), this.deps.strategy);
    const { namespace, name } = pod.metadata!;
    if (!decision.ok) {
      this.deps.metrics.schedulerAttempts.inc({ result: "unschedulable" });
      await this.markUnschedulable(pod, decision.message);
      return;
    }
    const expected = pod.metadata!.resourceVersion;
    const bound = await this.deps.pods.mutate(namespace, name, (current) => {
      // Bind only the version we decided on; anything newer is decided again.
      if (current.metadata!.resourceVersion !== expected || current.spec!.nodeName) return undefined;
      current.spec!.nodeName = decision.nodeName;
      current.status = { ...emptyStatus(), ...current.status, phase: "Pending" };
      current.status.conditions = withCondition(current.status.conditions, {
        type: "PodScheduled", status: "True", reason: "Scheduled", message: `assigned to ${decision.nodeName}`,
        lastTransitionTime: this.now().toISOString(), lastHeartbeatTime: "",
      });
      return current;
    });
    if (bound.spec?.nodeName === decision.nodeName && bound.metadata!.resourceVersion !== expected) {
      this.deps.podInformer.observe(bound);
      this.deps.metrics.schedulerAttempts.inc({ result: "scheduled" });
      this.deps.log.info({ pod: key, node: decision.nodeName, score: decision.score }, "pod bound");
    } else {
      this.queue.add(key);
    }
  }

  private async markUnschedulable(pod: Pod, message: string): Promise<void> {
    const existing = pod.status?.conditions.find((c) => c.type === "PodScheduled");
    if (existing?.status === "False" && existing.message === message) return;
    const updated = await this.deps.pods.mutate(pod.metadata!.namespace, pod.metadata!.name, (current) => {
      if (current.spec!.nodeName) return undefined;
      current.status = { ...emptyStatus(), ...current.status, phase: "Pending" };
      current.status.conditions = withCondition(current.status.conditions, {
        type: "PodScheduled", status: "False", reason: "Unschedulable", message,
        lastTransitionTime: this.now().toISOString(), lastHeartbeatTime: "",
      });
      return current;
    });
    this.deps.podInformer.observe(updated);
    this.deps.log.info({ pod: objectKey(pod), message }, "pod unschedulable");
  }
}

function nodeChanged(a: Node, b: Node): boolean {
  const ready = (n: Node) => n.status?.conditions.find((c) => c.type === "Ready")?.status;
  return (
    ready(a) !== ready(b) ||
    a.spec?.unschedulable !== b.spec?.unschedulable ||
    JSON.stringify(a.status?.allocatable) !== JSON.stringify(b.status?.allocatable) ||
    JSON.stringify(a.metadata?.labels) !== JSON.stringify(b.metadata?.labels)
  );
}

export function emptyStatus(): NonNullable<Pod["status"]> {
  return { phase: "Pending", conditions: [], reason: "", message: "", hostIp: "", startTime: "", containerStatuses: [], ports: [] };
}

export function withCondition(conditions: Condition[], next: Condition): Condition[] {
  const previous = conditions.find((c) => c.type === next.type);
  if (previous?.status === next.status) next.lastTransitionTime = previous.lastTransitionTime;
  return [...conditions.filter((c) => c.type !== next.type), next];
}
