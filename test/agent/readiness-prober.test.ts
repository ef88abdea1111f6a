// The probe scheduler with a scripted probe runner and vitest's fake clock: probes run when due, the pod workers hear
// of readiness changes only, and containers that are gone, replaced or given a new probe are handled.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { silentLogger } from "../../src/common/logger.js";
import { Probe } from "../../src/gen/flotilla/v1/pod.js";
import { ReadinessProber, type ProbedContainer } from "../../src/agent/readiness-prober.js";
import type { ProbeTarget } from "../../src/agent/probes.js";

const START = Date.parse("2026-01-01T00:00:00Z");

function container(overrides: Partial<ProbedContainer> = {}): ProbedContainer {
  return {
    podUid: "pod-1",
    podName: "web-1",
    containerName: "web",
    id: "c1",
    startedAtMs: START,
    ports: [],
    probe: Probe.fromPartial({ httpGet: { path: "/ready", port: "http" }, periodSeconds: 1, failureThreshold: 2 }),
    wasReady: false,
    ...overrides,
  };
}

describe("ReadinessProber", () => {
  /** The results the scripted runner gives, in turn; it passes once they run out. */
  let script: boolean[];
  let probed: { id: string; at: number; timeoutMs: number }[];
  let changes: string[];
  let prober: ReadinessProber;

  beforeEach(() => {
    vi.useFakeTimers({ now: START });
    script = [];
    probed = [];
    changes = [];
    prober = new ReadinessProber({
      run: async (_probe, target: ProbeTarget, timeoutMs) => {
        probed.push({ id: target.containerId, at: Date.now() - START, timeoutMs });
        return { passed: script.shift() ?? true, detail: "scripted" };
      },
      onChange: (podUid) => changes.push(podUid),
      nodeAddress: "127.0.0.1",
      log: silentLogger(),
      now: () => Date.now(),
    });
  });
  afterEach(() => {
    prober.stop();
    vi.useRealTimers();
  });

  it("probes once per period from the container's start, and reports only the changes of readiness", async () => {
    script = [false, true, true, false, false, false, true];
    expect(prober.readiness(container())).toBe(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(probed).toEqual([{ id: "c1", at: 0, timeoutMs: 1000 }]);
    expect(changes).toEqual([]);

    await vi.advanceTimersByTimeAsync(1000); // pass: ready
    expect(prober.readiness(container())).toBe(true);
    expect(changes).toEqual(["pod-1"]);

    await vi.advanceTimersByTimeAsync(3000); // pass, fail, fail: not ready on the second failure in a row
    expect(prober.readiness(container())).toBe(false);
    expect(changes).toEqual(["pod-1", "pod-1"]);

    await vi.advanceTimersByTimeAsync(2000); // fail, pass: ready again
    expect(prober.readiness(container())).toBe(true);
    expect(changes).toHaveLength(3);
    expect(probed.map((p) => p.at)).toEqual([0, 1000, 2000, 3000, 4000, 5000, 6000]);
  });

  it("waits out the initial delay, counted from when the container started", async () => {
    const probe = Probe.fromPartial({ tcpSocket: { port: "80" }, initialDelaySeconds: 5, periodSeconds: 1 });
    prober.readiness(container({ probe, startedAtMs: START - 2000 }));
    await vi.advanceTimersByTimeAsync(2999);
    expect(probed).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(probed.map((p) => p.at)).toEqual([3000]);
  });

  it("keeps an adopted container's earlier readiness until its probe fails enough", async () => {
    script = [false, false];
    expect(prober.readiness(container({ wasReady: true }))).toBe(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(prober.readiness(container({ wasReady: true }))).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(prober.readiness(container({ wasReady: true }))).toBe(false);
    expect(changes).toEqual(["pod-1"]);
  });

  it("starts a replaced container over, not ready, and stops probing the old one", async () => {
    prober.readiness(container());
    await vi.advanceTimersByTimeAsync(0);
    expect(prober.readiness(container())).toBe(true);

    expect(prober.readiness(container({ id: "c2", startedAtMs: START + 500 }))).toBe(false);
    prober.retainPod("pod-1", new Set(["c2"]));
    probed = [];
    await vi.advanceTimersByTimeAsync(3000);
    expect(new Set(probed.map((p) => p.id))).toEqual(new Set(["c2"]));
  });

  it("starts over when the probe itself changes, keeping the readiness it had", async () => {
    prober.readiness(container());
    await vi.advanceTimersByTimeAsync(0);
    const slower = Probe.fromPartial({ httpGet: { path: "/ready", port: "http" }, periodSeconds: 10 });
    expect(prober.readiness(container({ probe: slower }))).toBe(true);
    probed = [];
    await vi.advanceTimersByTimeAsync(10_000);
    // At once (its initial delay is long over), then one new period later.
    expect(probed.map((p) => p.at)).toEqual([0, 10_000]);
  });

  it("stops probing the containers of pods that are no longer wanted, and everything once stopped", async () => {
    prober.readiness(container());
    prober.readiness(container({ podUid: "pod-2", id: "d1" }));
    prober.retainPods((uid) => uid === "pod-2");
    await vi.advanceTimersByTimeAsync(2500);
    expect(new Set(probed.map((p) => p.id))).toEqual(new Set(["d1"]));

    prober.stop();
    probed = [];
    expect(prober.readiness(container({ id: "c9" }))).toBe(false);
    await vi.advanceTimersByTimeAsync(5000);
    expect(probed).toEqual([]);
  });

  it("drops the result of a probe that finishes after its container stopped being probed", async () => {
    let finish: (passed: boolean) => void = () => undefined;
    const slow = new ReadinessProber({
      run: () => new Promise((resolve) => (finish = (passed) => resolve({ passed, detail: "" }))),
      onChange: (podUid) => changes.push(podUid),
      nodeAddress: "127.0.0.1",
      log: silentLogger(),
      now: () => Date.now(),
    });
    slow.readiness(container());
    await vi.advanceTimersByTimeAsync(0);
    slow.retainPod("pod-1", new Set());
    finish(true);
    await vi.advanceTimersByTimeAsync(5000);
    expect(changes).toEqual([]);
    slow.stop();
  });
});
