import { describe, expect, it } from "vitest";
import { Node } from "../../../src/gen/flotilla/v1/node.js";
import { decideNodeHealth } from "../../../src/master/controllers/node-lifecycle.js";

const node = (status: string, heartbeat: string) =>
  Node.fromPartial({ metadata: { name: "n" }, status: { conditions: [{ type: "Ready", status, lastHeartbeatTime: heartbeat }] } });

describe("node lifecycle", () => {
  const t0 = Date.parse("2026-01-01T00:00:00Z");
  it("keeps a node Ready while heartbeats are within the grace period", () => {
    expect(decideNodeHealth(node("True", "2026-01-01T00:00:00Z"), t0 + 40_000, 40_000, 60_000)).toEqual({ markNotReady: false, evictPods: false });
  });
  it("marks a silent node NotReady after the grace period", () => {
    expect(decideNodeHealth(node("True", "2026-01-01T00:00:00Z"), t0 + 40_001, 40_000, 60_000)).toEqual({ markNotReady: true, evictPods: false });
  });
  it("evicts pods only after the eviction timeout on top", () => {
    expect(decideNodeHealth(node("Unknown", "2026-01-01T00:00:00Z"), t0 + 100_000, 40_000, 60_000).evictPods).toBe(false);
    expect(decideNodeHealth(node("Unknown", "2026-01-01T00:00:00Z"), t0 + 100_001, 40_000, 60_000).evictPods).toBe(true);
  });
});
