// The pure readiness decisions: defaults, initial delay, when probes are due, and the threshold transitions.
// Time is a plain number here, so every case is exact.
import { describe, expect, it } from "vitest";
import { Probe } from "../../src/gen/flotilla/v1/pod.js";
import { afterProbe, initialReadiness, isProbeDue, probeTiming, type ProbeTiming, type Readiness } from "../../src/agent/readiness.js";

const T0 = 1_000_000;

function timing(overrides: Partial<ProbeTiming> = {}): ProbeTiming {
  return { initialDelayMs: 0, periodMs: 1000, timeoutMs: 1000, successThreshold: 1, failureThreshold: 3, ...overrides };
}

/** Feeds results one per period from `state`, returning every state after the first. */
function run(state: Readiness, t: ProbeTiming, results: boolean[]): Readiness[] {
  const states: Readiness[] = [];
  for (const passed of results) {
    state = afterProbe(state, t, passed, state.dueAtMs);
    states.push(state);
  }
  return states;
}

describe("probe timing", () => {
  it("fills in the API's defaults for zeros", () => {
    expect(probeTiming(Probe.fromPartial({ httpGet: { path: "/", port: "80" } }))).toEqual({
      initialDelayMs: 0, periodMs: 10_000, timeoutMs: 1000, successThreshold: 1, failureThreshold: 3,
    });
  });

  it("keeps the values given, in milliseconds", () => {
    const probe = Probe.fromPartial({ tcpSocket: { port: "80" }, initialDelaySeconds: 5, periodSeconds: 2, timeoutSeconds: 3, successThreshold: 2, failureThreshold: 4 });
    expect(probeTiming(probe)).toEqual({ initialDelayMs: 5000, periodMs: 2000, timeoutMs: 3000, successThreshold: 2, failureThreshold: 4 });
  });
});

describe("when probes are due", () => {
  it("first probes once the initial delay since the container started has passed", () => {
    const state = initialReadiness(timing({ initialDelayMs: 5000 }), T0);
    expect(state).toEqual({ ready: false, successes: 0, failures: 0, dueAtMs: T0 + 5000 });
    expect(isProbeDue(state, T0 + 4999)).toBe(false);
    expect(isProbeDue(state, T0 + 5000)).toBe(true);
  });

  it("probes at once a container adopted long after its initial delay", () => {
    expect(isProbeDue(initialReadiness(timing({ initialDelayMs: 5000 }), T0 - 60_000), T0)).toBe(true);
  });

  it("schedules the next probe a period after the last one started, however long it took", () => {
    const t = timing({ periodMs: 10_000 });
    const state = afterProbe(initialReadiness(t, T0), t, true, T0 + 3);
    expect(state.dueAtMs).toBe(T0 + 10_003);
    expect(isProbeDue(state, T0 + 10_002)).toBe(false);
    expect(isProbeDue(state, T0 + 10_003)).toBe(true);
  });
});

describe("ready and not-ready transitions", () => {
  it("starts not ready, and turns ready on the first pass with the default threshold", () => {
    const t = timing();
    expect(initialReadiness(t, T0).ready).toBe(false);
    expect(run(initialReadiness(t, T0), t, [true]).map((s) => s.ready)).toEqual([true]);
  });

  it("needs successThreshold passes in a row; a failure in between starts the count over", () => {
    const t = timing({ successThreshold: 3 });
    const states = run(initialReadiness(t, T0), t, [true, true, false, true, true, true]);
    expect(states.map((s) => s.ready)).toEqual([false, false, false, false, false, true]);
    expect(states.map((s) => s.successes)).toEqual([1, 2, 0, 1, 2, 3]);
  });

  it("stays ready until failureThreshold failures in a row; a pass in between starts the count over", () => {
    const t = timing({ failureThreshold: 3 });
    const [ready] = run(initialReadiness(t, T0), t, [true]);
    const states = run(ready, t, [false, false, true, false, false, false]);
    expect(states.map((s) => s.ready)).toEqual([true, true, true, true, true, false]);
    expect(states.map((s) => s.failures)).toEqual([1, 2, 0, 1, 2, 3]);
  });

  it("goes ready, not ready and ready again as the probe passes and fails", () => {
    const t = timing({ successThreshold: 1, failureThreshold: 1 });
    const states = run(initialReadiness(t, T0), t, [false, true, true, false, false, true]);
    expect(states.map((s) => s.ready)).toEqual([false, true, true, false, false, true]);
  });

  it("stays not ready through failures, however many", () => {
    const t = timing({ failureThreshold: 2 });
    expect(run(initialReadiness(t, T0), t, [false, false, false, false]).every((s) => !s.ready)).toBe(true);
  });

  it("carries a readiness reported before an agent restart until failureThreshold failures say otherwise", () => {
    const t = timing({ failureThreshold: 2 });
    const adopted = initialReadiness(t, T0, true);
    expect(adopted.ready).toBe(true);
    expect(run(adopted, t, [false, false]).map((s) => s.ready)).toEqual([true, false]);
    expect(run(adopted, t, [true]).map((s) => s.ready)).toEqual([true]);
  });
});
