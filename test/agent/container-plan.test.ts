import { describe, expect, it } from "vitest";
import { backoffDelay, containerStatus, decideContainer, podPhase, type BackoffPolicy } from "../../src/agent/container-plan.js";
import type { RuntimeContainer } from "../../src/agent/runtime/runtime.js";

const policy: BackoffPolicy = { baseMs: 1000, maxMs: 8000, resetAfterMs: 60_000 };
const T = Date.parse("2026-01-01T00:01:00Z");

function exited(attempt: number, exitCode: number, ranMs = 1000): RuntimeContainer {
  return {
    id: `c${attempt}`, podUid: "u", podName: "p", namespace: "default", containerName: "c", specHash: "h", attempt,
    state: "exited", exitCode, startedAt: new Date(T - ranMs).toISOString(), finishedAt: new Date(T).toISOString(), ports: [],
  };
}

describe("container restart decisions", () => {
  it("starts a container that has never run", () => {
    expect(decideContainer(undefined, undefined, "Always", T, policy)).toEqual({ kind: "start", attempt: 0 });
  });

  it("waits the base delay after the first exit, then doubles it up to the cap", () => {
    expect(backoffDelay(1, 0, policy)).toBe(1000);
    expect(backoffDelay(2, 0, policy)).toBe(2000);
    expect(backoffDelay(5, 0, policy)).toBe(8000);
    expect(decideContainer(exited(0, 1), undefined, "Always", T, policy)).toEqual({ kind: "wait", untilMs: T + 1000 });
    expect(decideContainer(exited(0, 1), undefined, "Always", T + 1000, policy)).toEqual({ kind: "start", attempt: 1 });
    expect(decideContainer(exited(3, 1), undefined, "Always", T + 1000, policy)).toEqual({ kind: "wait", untilMs: T + 8000 });
  });

  it("resets the back-off after a long healthy run", () => {
    expect(decideContainer(exited(6, 1, 120_000), undefined, "Always", T, policy)).toEqual({ kind: "start", attempt: 7 });
  });

  it("follows the restart policy", () => {
    expect(decideContainer(exited(0, 0), undefined, "OnFailure", T + 5000, policy)).toEqual({ kind: "none" });
    expect(decideContainer(exited(0, 2), undefined, "OnFailure", T + 5000, policy)).toMatchObject({ kind: "start" });
    expect(decideContainer(exited(0, 2), undefined, "Never", T + 5000, policy)).toEqual({ kind: "none" });
  });

  it("reports CrashLoopBackOff while waiting, with the last termination", () => {
    const latest = exited(2, 137);
    const status = containerStatus("c", "img", latest, { kind: "wait", untilMs: T + 4000 }, undefined);
    expect(status.state?.waiting?.reason).toBe("CrashLoopBackOff");
    expect(status.lastState?.terminated).toMatchObject({ exitCode: 137, reason: "Error" });
    expect(status.restartCount).toBe(2);
  });

  it("computes the pod phase as kubelet does", () => {
    const running = containerStatus("c", "i", { ...exited(0, 0), state: "running" }, { kind: "none" }, undefined);
    const done = containerStatus("c", "i", exited(0, 0), { kind: "none" }, undefined);
    const failed = containerStatus("c", "i", exited(0, 3), { kind: "none" }, undefined);
    const creating = containerStatus("c", "i", undefined, { kind: "start", attempt: 0 }, undefined);
    expect(podPhase([running], "Always")).toBe("Running");
    expect(podPhase([done], "OnFailure")).toBe("Succeeded");
    expect(podPhase([failed], "Never")).toBe("Failed");
    expect(podPhase([creating], "Always")).toBe("Pending");
    const imageMissing = containerStatus("c", "i", undefined, { kind: "wait", untilMs: 0 }, { attempt: 0, reason: "ErrImageNeverPull", message: "absent", atMs: T, failures: 1 });
    expect(imageMissing.state?.waiting?.reason).toBe("ErrImageNeverPull");
    expect(podPhase([imageMissing], "Always")).toBe("Pending");
  });
});
