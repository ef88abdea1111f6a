// The pod workers: make the runtime match the pods bound to this node, and report what is running.
//
//   master watch ──► desired pods ─┐
//                                  ├─► sync (one worker per pod, pods in parallel) ──► runtime start/stop/remove
//   runtime list/events ──────────┘                        │
//                                                          └─► UpdatePodStatus (only when it changed)
//
// A running container is ready, unless it has a readinessProbe: then it is ready while that probe passes
// (readiness-prober.ts runs the probes and triggers a sync when a container's readiness changes).
//
// Containers are found again by their labels, so a restarted agent adopts what runs instead of starting
// duplicates. Containers are removed only for pods the master has positively stopped binding here (a fresh list
// or a DELETED event); while the master is unreachable, nothing is stopped.
import { createHash } from "node:crypto";
import { containerResolver } from "../net/resolv-conf.js";
import { isDeepStrictEqual } from "node:util";
import type { Container, Pod, PodStatus } from "../gen/flotilla/v1/pod.js";
import type { Logger } from "../common/logger.js";
import { parseBytes, parseCpuMillis } from "../api/quantity.js";
import { isPodTerminal } from "../api/pod-status.js";
import {
  type BackoffPolicy,
  containerStatus,
  decideContainer,
  podPhase,
  type RestartPolicy,
  type StartFailure,
} from "./container-plan.js";
import { runProbe } from "./probes.js";
import { type ProbedContainer, ReadinessProber } from "./readiness-prober.js";
import { type ContainerSpec, RuntimeError, type Runtime, type RuntimeContainer } from "./runtime/runtime.js";

export interface StatusReporter {
  report(pod: Pod, status: PodStatus): Promise<void>;
}

export interface PodWorkerOptions {
  nodeName: string;
  nodeAddress: string;
  runtime: Runtime;
  reporter: StatusReporter;
  log: Logger;
  backoff: BackoffPolicy;
  onContainerStart?: (result: "ok" | "error") => void;
  now?: () => number;
  /** The node's cluster DNS: containers get it as their resolver, with the search list of their namespace. */
  clusterDns?: { nameserver: string; domain: string };
  /**
   * Called before a deleted pod's containers are stopped ("namespace/name"), and awaited: the node network waits
   * there until no proxy sends the pod new connections (it must bound its own wait).
   */
  beforeStop?: (pod: string) => Promise<void>;
}

const DEFAULT_GRACE_SECONDS = 30;

export class PodWorkers {
  private readonly desired = new Map<string, Pod>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, StartFailure>();
  private readonly reported = new Map<string, PodStatus>();
  private readonly stopping = new Set<string>();
  /** When each pod's containers were last removed, so a pass that listed before that does not remove again. */
  private readonly removedAt = new Map<string, number>();
  /** Grace periods of the pods seen, for stopping them after they are gone from the master. */
  private readonly graceSeconds = new Map<string, number>();
  /** When this agent first accepted each pod: the pod's startTime. */
  private readonly acceptedAt = new Map<string, string>();
  /** True once a complete list of this node's pods has come from the master. */
  private haveFullList = false;
  private syncing?: Promise<void>;
  private resync = false;
  private timer?: NodeJS.Timeout;
  private unwatch?: () => void;
  private readonly now: () => number;
  private readonly prober: ReadinessProber;

  constructor(private readonly o: PodWorkerOptions) {
    this.now = o.now ?? Date.now;
    this.prober = new ReadinessProber({
      run: (probe, target, timeoutMs) => runProbe(o.runtime, probe, target, timeoutMs),
      onChange: () => this.trigger(),
      nodeAddress: o.nodeAddress,
      log: o.log,
      now: this.now,
    });
  }

  start(): void {
    this.unwatch = this.o.runtime.watch(() => this.trigger());
    this.timer = setInterval(() => this.trigger(), 1000);
    this.trigger();
  }

  stop(): void {
    clearInterval(this.timer);
    this.unwatch?.();
    this.prober.stop();
  }

  /** Replaces the desired set with a complete list from the master. */
  setPods(pods: Pod[]): void {
    this.desired.clear();
    for (const pod of pods) this.upsert(pod);
    this.haveFullList = true;
    this.trigger();
  }

  upsertPod(pod: Pod): void {
    this.upsert(pod);
    this.trigger();
  }

  deletePod(pod: Pod): void {
    this.desired.delete(pod.metadata!.uid);
    this.trigger();
  }

  podCount(): number {
    return this.desired.size;
  }

  /** Runs a sync pass now and resolves when it (and any pass it caused) is done. */
  async syncNow(): Promise<void> {
    this.trigger();
    while (this.syncing) await this.syncing;
    await Promise.all(this.inFlight.values());
  }

  private upsert(pod: Pod): void {
    const uid = pod.metadata!.uid;
    if (pod.spec?.nodeName !== this.o.nodeName) {
      this.desired.delete(uid);
      return;
    }
    this.desired.set(uid, pod);
    const grace = pod.spec.terminationGracePeriodSeconds;
    this.graceSeconds.set(uid, grace === undefined ? DEFAULT_GRACE_SECONDS : Number(grace));
    if (!this.acceptedAt.has(uid)) this.acceptedAt.set(uid, new Date(this.now()).toISOString());
  }

  private trigger(): void {
    if (this.syncing) {
      this.resync = true;
      return;
    }
    this.syncing = this.syncAll()
      .catch((e: unknown) => this.o.log.warn({ err: e }, "sync failed; will retry"))
      .finally(() => {
        this.syncing = undefined;
        if (this.resync) {
          this.resync = false;
          this.trigger();
        }
      });
  }

  private async syncAll(): Promise<void> {
    const listedAt = this.now();
    for (const [uid, at] of this.removedAt) if (at < listedAt - 60_000) this.removedAt.delete(uid);
    const containers = await this.o.runtime.list();
    const byPod = new Map<string, RuntimeContainer[]>();
    for (const c of containers) byPod.set(c.podUid, [...(byPod.get(c.podUid) ?? []), c]);
    // A pod that left this node is probed no more, even when its containers are already gone.
    this.prober.retainPods((uid) => this.desired.has(uid));
    for (const [uid, pod] of this.desired) this.schedule(uid, () => this.syncPod(pod, byPod.get(uid) ?? []));
    if (!this.haveFullList) return;
    for (const [uid, list] of byPod) {
      if (this.desired.has(uid) || (this.removedAt.get(uid) ?? -Infinity) >= listedAt) continue;
      this.schedule(uid, () => this.removePod(uid, list));
    }
  }

  /** One worker per pod: a pod is synced by one pass at a time; a newer request runs after it. */
  private schedule(uid: string, work: () => Promise<void>): void {
    if (this.inFlight.has(uid)) {
      this.dirty.add(uid);
      return;
    }
    const run = work()
      .catch((e: unknown) => this.o.log.warn({ err: e, podUid: uid }, "pod sync failed; will retry"))
      .finally(() => {
        this.inFlight.delete(uid);
        if (this.dirty.delete(uid)) this.trigger();
      });
    this.inFlight.set(uid, run);
  }

  private async syncPod(pod: Pod, existing: RuntimeContainer[]): Promise<void> {
    const spec = pod.spec!;
    const policy = (spec.restartPolicy || "Always") as RestartPolicy;
    const evicted = isPodTerminal(pod) && pod.status?.reason === "NodeLost";
    if (evicted) return this.removePod(pod.metadata!.uid, existing);
    const statuses = [];
    const ports: PodStatus["ports"] = [];
    const probed = new Set<string>();
    let current = existing;
    for (const container of spec.containers) {
      const key = `${pod.metadata!.uid}/${container.name}`;
      const attempts = current.filter((c) => c.containerName === container.name).sort((a, b) => b.attempt - a.attempt);
      let latest = attempts[0];
      const failure = this.failures.get(key);
      const action = decideContainer(latest, failure, policy, this.now(), this.o.backoff);
      if (action.kind === "start") {
        latest = (await this.startContainer(pod, container.name, action.attempt, key)) ?? latest;
        if (latest && latest !== attempts[0]) {
          current = [...current, latest];
          for (const old of attempts.slice(1)) await this.o.runtime.remove(old.id);
          if (attempts[0]) await this.o.runtime.remove(attempts[0].id);
        }
      }
      const nextAction = decideContainer(latest, this.failures.get(key), policy, this.now(), this.o.backoff);
      const status = containerStatus(container.name, container.image, latest, nextAction, this.failures.get(key));
      if (status.ready && latest && container.readinessProbe) {
        probed.add(latest.id);
        status.ready = this.prober.readiness(this.probedContainer(pod, container, latest));
      }
      statuses.push(status);
      for (const p of latest?.state === "running" ? latest.ports : []) {
        ports.push({ container: container.name, name: p.name, containerPort: p.containerPort, hostIp: p.hostIp, hostPort: p.hostPort, protocol: p.protocol });
      }
    }
    this.prober.retainPod(pod.metadata!.uid, probed);
    await this.report(pod, statuses, ports, policy);
  }

  private probedContainer(pod: Pod, container: Container, latest: RuntimeContainer): ProbedContainer {
    const uid = pod.metadata!.uid;
    const lastReported = (this.reported.get(uid) ?? pod.status)?.containerStatuses.find((s) => s.name === container.name);
    const startedAtMs = Date.parse(latest.startedAt ?? "");
    return {
      podUid: uid,
      podName: pod.metadata!.name,
      containerName: container.name,
      id: latest.id,
      startedAtMs: Number.isNaN(startedAtMs) ? this.now() : startedAtMs,
      ports: latest.ports,
      probe: container.readinessProbe!,
      wasReady: lastReported?.containerId === latest.id && lastReported.ready,
    };
  }

  private async startContainer(pod: Pod, name: string, attempt: number, key: string): Promise<RuntimeContainer | undefined> {
    const spec = this.containerSpec(pod, name, attempt);
    try {
      const started = await this.o.runtime.start(spec);
      this.failures.delete(key);
      this.o.onContainerStart?.("ok");
      this.o.log.info({ pod: pod.metadata!.name, container: name, attempt, id: started.id }, "container started");
      return started;
    } catch (e) {
      this.o.onContainerStart?.("error");
      const previous = this.failures.get(key);
      const reason = e instanceof RuntimeError ? e.reason : "RunContainerError";
      const message = e instanceof Error ? e.message : String(e);
      this.failures.set(key, { attempt, reason, message, atMs: this.now(), failures: (previous?.failures ?? 0) + 1 });
      this.o.log.warn({ pod: pod.metadata!.name, container: name, reason, message }, "container failed to start");
      return undefined;
    }
  }

  private containerSpec(pod: Pod, name: string, attempt: number): ContainerSpec {
    const c = pod.spec!.containers.find((x) => x.name === name)!;
    const limits = c.resources?.limits ?? {};
    const meta = pod.metadata!;
    return {
      podUid: meta.uid,
      podName: meta.name,
      namespace: meta.namespace,
      containerName: name,
      specHash: createHash("sha256").update(JSON.stringify(c)).digest("hex").slice(0, 12),
      attempt,
      image: c.image,
      command: c.command,
      args: c.args,
      env: {
        FLOTILLA_POD_NAME: meta.name,
        FLOTILLA_POD_NAMESPACE: meta.namespace,
        FLOTILLA_NODE_NAME: this.o.nodeName,
        ...Object.fromEntries(c.env.map((e) => [e.name, e.value])),
      },
      workingDir: c.workingDir,
      ports: c.ports.map((p) => ({
        name: p.name,
        containerPort: p.containerPort,
        hostPort: p.hostPort,
        hostIp: p.hostIp || this.o.nodeAddress,
        protocol: p.protocol === "UDP" ? "UDP" : "TCP",
      })),
      cpuLimitMillis: limits.cpu ? parseCpuMillis(limits.cpu) : undefined,
      memoryLimitBytes: limits.memory ? parseBytes(limits.memory) : undefined,
      imagePullPolicy: (c.imagePullPolicy || "IfNotPresent") as ContainerSpec["imagePullPolicy"],
      ...(this.o.clusterDns ? { dns: containerResolver({ ...this.o.clusterDns, namespace: meta.namespace }) } : {}),
    };
  }

  private async report(pod: Pod, statuses: PodStatus["containerStatuses"], ports: PodStatus["ports"], policy: RestartPolicy): Promise<void> {
    const uid = pod.metadata!.uid;
    const phase = podPhase(statuses, policy);
    const ready = statuses.every((s) => s.ready) && phase === "Running";
    const previous = this.reported.get(uid) ?? pod.status;
    const startTime = previous?.startTime || this.acceptedAt.get(uid) || new Date(this.now()).toISOString();
    const conditions = [
      ...(pod.status?.conditions.filter((c) => c.type === "PodScheduled") ?? []),
      { type: "Ready", status: ready ? "True" : "False", reason: ready ? "" : "ContainersNotReady", message: "", lastTransitionTime: "", lastHeartbeatTime: "" },
    ];
    const prevReady = previous?.conditions.find((c) => c.type === "Ready");
    conditions[conditions.length - 1].lastTransitionTime =
      prevReady && prevReady.status === conditions[conditions.length - 1].status ? prevReady.lastTransitionTime : new Date(this.now()).toISOString();
    const status: PodStatus = {
      phase, conditions, reason: "", message: "", hostIp: this.o.nodeAddress, startTime, containerStatuses: statuses, ports,
    };
    if (isDeepStrictEqual(status, previous)) return;
    await this.o.reporter.report(pod, status);
    this.reported.set(uid, status);
  }

  private async removePod(uid: string, containers: RuntimeContainer[]): Promise<void> {
    if (this.stopping.has(uid)) return;
    this.stopping.add(uid);
    this.prober.retainPod(uid, new Set());
    try {
      const running = containers.find((c) => c.state === "running");
      if (running && this.o.beforeStop) await this.o.beforeStop(`${running.namespace}/${running.podName}`).catch(() => undefined);
      const grace = this.graceSeconds.get(uid) ?? DEFAULT_GRACE_SECONDS;
      await Promise.all(
        containers.map(async (c) => {
          await this.o.runtime.stop(c.id, grace);
          await this.o.runtime.remove(c.id);
        }),
      );
      this.reported.delete(uid);
      this.graceSeconds.delete(uid);
      this.acceptedAt.delete(uid);
      this.removedAt.set(uid, this.now());
      for (const key of this.failures.keys()) if (key.startsWith(`${uid}/`)) this.failures.delete(key);
      if (containers.length) this.o.log.info({ podUid: uid, pod: containers[0].podName }, "pod's containers stopped and removed");
    } finally {
      this.stopping.delete(uid);
    }
  }
}
