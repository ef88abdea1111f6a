// The readiness probes of the containers running on this node: one timer per probed container, which runs its probe
// whenever readiness.ts says it is due, and tells the pod workers when the container turns ready or not ready, so a
// status update goes out only on a change. A failing probe only takes readiness away: it never restarts anything.
//
//   pod worker ──readiness(container)──► worker per container id ──timer──► run probe ──► afterProbe ──► onChange
import type { Logger } from "../common/logger.js";
import type { Probe } from "../gen/flotilla/v1/pod.js";
import type { ProbeResult, ProbeTarget } from "./probes.js";
import { afterProbe, initialReadiness, probeTiming, type ProbeTiming, type Readiness } from "./readiness.js";
import type { PublishedPort } from "./runtime/runtime.js";

export type ProbeRunner = (probe: Probe, target: ProbeTarget, timeoutMs: number) => Promise<ProbeResult>;

export interface ProbedContainer {
  podUid: string;
  podName: string;
  containerName: string;
  /** The runtime's id: a restarted container is a new one, and starts over not ready. */
  id: string;
  startedAtMs: number;
  ports: PublishedPort[];
  probe: Probe;
  /** Whether this very container was last reported ready (by this agent before it restarted). */
  wasReady: boolean;
}

export interface ReadinessProberOptions {
  run: ProbeRunner;
  /** Called when a container of the pod has turned ready or not ready. */
  onChange: (podUid: string) => void;
  nodeAddress: string;
  log: Logger;
  now?: () => number;
}

interface Worker {
  container: ProbedContainer;
  /** The probe as JSON: a pod spec update that changes it starts the worker over. */
  probeKey: string;
  timing: ProbeTiming;
  readiness: Readiness;
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

export class ReadinessProber {
  /** By container id. */
  private readonly workers = new Map<string, Worker>();
  private readonly now: () => number;
  private stopped = false;

  constructor(private readonly o: ReadinessProberOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Whether the container is ready now; the first call for a container starts probing it. */
  readiness(container: ProbedContainer): boolean {
    // A pod sync still in flight while the agent stops must not start probing again.
    if (this.stopped) return container.wasReady;
    const probeKey = JSON.stringify(container.probe);
    const current = this.workers.get(container.id);
    if (current?.probeKey === probeKey) return current.readiness.ready;
    if (current) this.stopWorker(current);
    const wasReady = current ? current.readiness.ready : container.wasReady;
    return this.startWorker(container, probeKey, wasReady).readiness.ready;
  }

  /** Stops probing the pod's containers other than the ids in `keep` (they exited, or were replaced). */
  retainPod(podUid: string, keep: ReadonlySet<string>): void {
    for (const worker of this.workers.values()) {
      if (worker.container.podUid === podUid && !keep.has(worker.container.id)) this.stopWorker(worker);
    }
  }

  /** Stops probing the containers of every pod that `isWanted` turns down (the pod left this node). */
  retainPods(isWanted: (podUid: string) => boolean): void {
    for (const worker of this.workers.values()) if (!isWanted(worker.container.podUid)) this.stopWorker(worker);
  }

  stop(): void {
    this.stopped = true;
    for (const worker of this.workers.values()) this.stopWorker(worker);
  }

  private startWorker(container: ProbedContainer, probeKey: string, wasReady: boolean): Worker {
    const timing = probeTiming(container.probe);
    const readiness = initialReadiness(timing, container.startedAtMs, wasReady);
    const worker: Worker = { container, probeKey, timing, readiness, stopped: false };
    this.workers.set(container.id, worker);
    this.scheduleNext(worker);
    return worker;
  }

  private stopWorker(worker: Worker): void {
    worker.stopped = true;
    clearTimeout(worker.timer);
    if (this.workers.get(worker.container.id) === worker) this.workers.delete(worker.container.id);
  }

  private scheduleNext(worker: Worker): void {
    const delay = Math.max(0, worker.readiness.dueAtMs - this.now());
    worker.timer = setTimeout(() => void this.probeOnce(worker), delay);
    worker.timer.unref();
  }

  private async probeOnce(worker: Worker): Promise<void> {
    const { container, timing } = worker;
    const startedAt = this.now();
    const target = { containerId: container.id, ports: container.ports, nodeAddress: this.o.nodeAddress };
    const result = await this.o.run(container.probe, target, timing.timeoutMs).catch(
      (err: unknown): ProbeResult => ({ passed: false, detail: err instanceof Error ? err.message : String(err) }),
    );
    if (worker.stopped) return;
    const before = worker.readiness.ready;
    worker.readiness = afterProbe(worker.readiness, timing, result.passed, startedAt);
    const fields = { pod: container.podName, container: container.containerName, detail: result.detail };
    if (!result.passed) this.o.log.debug(fields, "readiness probe failed");
    if (worker.readiness.ready !== before) {
      this.o.log.info({ ...fields, ready: worker.readiness.ready }, worker.readiness.ready ? "container is ready" : "container is not ready");
      this.o.onChange(container.podUid);
    }
    this.scheduleNext(worker);
  }
}
