// Readiness decisions for one container's readinessProbe, as kubelet makes them: when the next probe is due, and
// how a run of probe results turns the container ready or not ready. Pure: times come in as arguments, and the
// probes themselves are run elsewhere (probes.ts, readiness-prober.ts).
//
//   not ready ──(successThreshold passes in a row)──► ready ──(failureThreshold failures in a row)──► not ready
import type { Probe } from "../gen/flotilla/v1/pod.js";

/** A Probe's numbers with the API's defaults filled in (0 means the default), in milliseconds. */
export interface ProbeTiming {
  initialDelayMs: number;
  periodMs: number;
  timeoutMs: number;
  successThreshold: number;
  failureThreshold: number;
}

export const PROBE_DEFAULTS = { periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 };

export interface Readiness {
  ready: boolean;
  /** Passes in a row; 0 after a failure. */
  successes: number;
  /** Failures in a row; 0 after a pass. */
  failures: number;
  /** When the next probe may start. */
  dueAtMs: number;
}

export function probeTiming(probe: Probe): ProbeTiming {
  const or = (value: number, fallback: number) => (value > 0 ? value : fallback);
  return {
    initialDelayMs: Math.max(0, probe.initialDelaySeconds) * 1000,
    periodMs: or(probe.periodSeconds, PROBE_DEFAULTS.periodSeconds) * 1000,
    timeoutMs: or(probe.timeoutSeconds, PROBE_DEFAULTS.timeoutSeconds) * 1000,
    successThreshold: or(probe.successThreshold, PROBE_DEFAULTS.successThreshold),
    failureThreshold: or(probe.failureThreshold, PROBE_DEFAULTS.failureThreshold),
  };
}

/**
 * A container starts not ready, and is first probed once its initial delay has passed since it started.
 * `wasReady` carries over a readiness this agent reported before it restarted, so that adopting a container that
 * served traffic does not take it out of its services until a probe has passed again.
 */
export function initialReadiness(timing: ProbeTiming, containerStartedAtMs: number, wasReady = false): Readiness {
  return { ready: wasReady, successes: 0, failures: 0, dueAtMs: containerStartedAtMs + timing.initialDelayMs };
}

export function isProbeDue(readiness: Readiness, nowMs: number): boolean {
  return nowMs >= readiness.dueAtMs;
}

/** The state after a probe that started at `probeStartedAtMs`; the next one is due a period after that start. */
export function afterProbe(readiness: Readiness, timing: ProbeTiming, passed: boolean, probeStartedAtMs: number): Readiness {
  const successes = passed ? readiness.successes + 1 : 0;
  const failures = passed ? 0 : readiness.failures + 1;
  const ready = passed ? readiness.ready || successes >= timing.successThreshold : readiness.ready && failures < timing.failureThreshold;
  return { ready, successes, failures, dueAtMs: probeStartedAtMs + timing.periodMs };
}
