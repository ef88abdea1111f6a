// Pure decisions of the pod worker: for one container of one pod, given the attempts the runtime knows of,
// whether to start it, wait out a back-off, or leave it; and what status that amounts to. Time is passed in.
import type { ContainerState, ContainerStatus, PodStatus } from "../gen/flotilla/v1/pod.js";
import type { RuntimeContainer } from "./runtime/runtime.js";

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** A run at least this long resets the back-off, as kubelet does after a container has been healthy. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 60_000, resetAfterMs: 60_000 };

export type RestartPolicy = "Always" | "OnFailure" | "Never";

export type ContainerAction =
  | { kind: "none" }
  | { kind: "start"; attempt: number }
  | { kind: "wait"; untilMs: number };

/** A start that failed before a container existed (image missing, port taken). */
export interface StartFailure {
  attempt: number;
  reason: string;
  message: string;
  atMs: number;
  failures: number;
}

export function willRestart(policy: RestartPolicy, exitCode: number | undefined): boolean {
  return policy === "Always" || (policy === "OnFailure" && exitCode !== 0);
}

export function backoffDelay(restarts: number, lastRunMs: number, policy: BackoffPolicy): number {
  if (restarts === 0 || lastRunMs >= policy.resetAfterMs) return 0;
  return Math.min(policy.maxMs, policy.baseMs * 2 ** (restarts - 1));
}

const ms = (iso: string | undefined) => (iso ? Date.parse(iso) : NaN);

/** The newest attempt decides. `failure` is a start error newer than any attempt. */
export function decideContainer(
  latest: RuntimeContainer | undefined,
  failure: StartFailure | undefined,
  restartPolicy: RestartPolicy,
  nowMs: number,
  policy: BackoffPolicy,
): ContainerAction {
  if (failure) {
    const until = failure.atMs + backoffDelay(failure.failures, 0, policy);
    return nowMs >= until ? { kind: "start", attempt: failure.attempt } : { kind: "wait", untilMs: until };
  }
  if (!latest) return { kind: "start", attempt: 0 };
  if (latest.state !== "exited") return { kind: "none" };
  if (!willRestart(restartPolicy, latest.exitCode)) return { kind: "none" };
  const restarts = latest.attempt + 1;
  const lastRunMs = ms(latest.finishedAt) - ms(latest.startedAt);
  // An exit whose time is unknown (a process killed with its wrapper) is treated as long past.
  const finished = ms(latest.finishedAt);
  const until = (Number.isNaN(finished) ? 0 : finished) + backoffDelay(restarts, Number.isNaN(lastRunMs) ? 0 : lastRunMs, policy);
  return nowMs >= until ? { kind: "start", attempt: restarts } : { kind: "wait", untilMs: until };
}

function terminatedState(c: RuntimeContainer): ContainerState {
  return {
    terminated: {
      exitCode: c.exitCode ?? -1,
      reason: c.reason || (c.exitCode === 0 ? "Completed" : "Error"),
      message: "",
      startedAt: c.startedAt ?? "",
      finishedAt: c.finishedAt ?? "",
    },
  };
}

export function containerStatus(
  name: string,
  image: string,
  latest: RuntimeContainer | undefined,
  action: ContainerAction,
  failure: StartFailure | undefined,
): ContainerStatus {
  const base = { name, image, restartCount: latest?.attempt ?? 0, containerId: latest?.id ?? "", lastState: undefined as ContainerState | undefined };
  if (failure && (!latest || latest.state === "exited")) {
    return { ...base, ready: false, state: { waiting: { reason: failure.reason, message: failure.message } }, lastState: latest ? terminatedState(latest) : undefined };
  }
  if (!latest) return { ...base, ready: false, state: { waiting: { reason: "ContainerCreating", message: "" } } };
  if (latest.state === "running") return { ...base, ready: true, state: { running: { startedAt: latest.startedAt ?? "" } } };
  if (latest.state === "created") return { ...base, ready: false, state: { waiting: { reason: "ContainerCreating", message: "" } } };
  if (action.kind === "wait") {
    return {
      ...base,
      ready: false,
      state: { waiting: { reason: "CrashLoopBackOff", message: `back-off restarting failed container ${name}` } },
      lastState: terminatedState(latest),
    };
  }
  return { ...base, ready: false, state: terminatedState(latest) };
}

/** Pod phase from its containers, as kubelet computes it. */
export function podPhase(statuses: ContainerStatus[], restartPolicy: RestartPolicy): PodStatus["phase"] {
  if (statuses.some((s) => s.state?.waiting?.reason === "ContainerCreating" && s.restartCount === 0 && !s.lastState)) {
    return statuses.some((s) => s.state?.running) ? "Running" : "Pending";
  }
  const terminated = statuses.filter((s) => s.state?.terminated);
  if (terminated.length === statuses.length) {
    const allSucceeded = terminated.every((s) => s.state!.terminated!.exitCode === 0);
    if (allSucceeded) return "Succeeded";
    if (restartPolicy === "Never" || restartPolicy === "OnFailure") return "Failed";
  }
  if (statuses.some((s) => s.state?.waiting && s.restartCount === 0 && !s.lastState)) return "Pending";
  return "Running";
}
