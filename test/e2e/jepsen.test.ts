// A bounded Jepsen-style run in CI: three real masters on 127.0.2.1-3 (ports 19000-19002), six clients doing
// put / get / cas on three keys through the etcd API, while the nemesis kills the leader and pauses a master. The
// recorded history must be linearizable (a definite ok, not "unknown"). As root with `ip netns`, a second run puts
// the masters in network namespaces of its own and adds a leader partition. No timing assertions.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runJepsen, summarize } from "../../src/store/linearizability/jepsen.js";
import { netnsAvailable } from "../../src/store/linearizability/netns.js";
import { requireBuild } from "../support/processes.js";

describe("Jepsen-style linearizability under faults", () => {
  it("keeps put / get / cas linearizable through a leader kill and a pause", async () => {
    requireBuild();
    const report = await runJepsen({ durationMs: 25_000, nemesisIntervalMs: 3000, faultMs: 3000 });
    const summary = summarize(report);
    if (report.check.ok !== true) console.error(summary);
    expect(report.check.ok, summary).toBe(true);
    expect(report.stats.ok).toBeGreaterThan(100);
    expect(report.faults["kill-leader"]).toBeGreaterThanOrEqual(1);
    expect(report.faults.pause).toBeGreaterThanOrEqual(1);
  }, 240_000);

  it.runIf(netnsAvailable())("stays linearizable through a leader partition (masters in network namespaces)", () => {
    requireBuild();
    const main = join(process.cwd(), "dist", "src", "store", "linearizability", "jepsen-main.js");
    const r = spawnSync(process.execPath, [main, "--minutes", "0.5", "--partition"], { encoding: "utf8", timeout: 200_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/check: linearizable/);
    expect(r.stdout).toMatch(/partition-leader [1-9]/);
  }, 240_000);
});
