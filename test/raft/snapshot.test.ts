// Log compaction and InstallSnapshot (Raft §7): a follower that needs compacted entries gets the leader's
// snapshot, then the entries after it; a failed send resumes probing.
import { describe, expect, it } from "vitest";
import { bytes, Network } from "./helpers/network.js";

/** a leads a, b, c; c misses five proposals, which a then compacts away behind a snapshot. */
function compactedBehindFollower(): Network {
  const net = new Network(["a", "b", "c"]);
  net.campaign("a");
  net.isolate("c");
  for (let i = 1; i <= 5; i++) net.propose("a", `p${i}`);
  const a = net.get("a");
  const applied = a.node.status().applied;
  expect(applied).toBe(6);
  a.log.createSnapshot(applied, bytes("state@6"));
  a.log.compact(applied);
  return net;
}

describe("snapshots (§7)", () => {
  it("sends a snapshot to a follower whose next entries are compacted, then the entries after it (§7)", () => {
    const net = compactedBehindFollower();
    net.heal();
    net.tick("a"); // heartbeat → c answers → a probes, finds the entries compacted, sends the snapshot
    const snaps = net.sent.filter((m) => m.type === "snap");
    expect(snaps.map((m) => [m.to, m.snapshot?.meta.index])).toEqual([["c", 6]]);
    const c = net.get("c");
    expect(c.log.snapshot().meta).toMatchObject({ index: 6, term: 1, confState: { voters: ["a", "b", "c"] } });
    expect(c.node.status()).toMatchObject({ commit: 6, applied: 6 });
    net.propose("a", "after");
    net.tick("a");
    expect(c.node.status()).toMatchObject({ lastIndex: 7, commit: 7, applied: 7 });
    expect(net.appliedData("c")).toEqual(["after"]); // the rest came from the snapshot's state
    expect(net.node("a").status().progress?.get("c")).toMatchObject({ state: "replicate", match: 7 });
  });

  it("holds the follower in snapshot state while the snapshot is in flight, and probes again on failure (§7)", () => {
    const net = compactedBehindFollower();
    net.heal();
    net.filter = (m) => m.type !== "snap"; // the transport loses the snapshot
    net.tick("a");
    expect(net.node("a").status().progress?.get("c")).toMatchObject({ state: "snapshot", next: 7 });
    net.tick("a", 3);
    expect(net.sent.filter((m) => m.type === "snap")).toHaveLength(1); // paused: no second snapshot
    net.act("a", (n) => n.reportSnapshot("c", false));
    expect(net.node("a").status().progress?.get("c")).toMatchObject({ state: "probe", match: 1, next: 2 });
    net.heal();
    net.tick("a"); // the heartbeat answer resumes probing, which leads to a fresh snapshot
    expect(net.get("c").node.status()).toMatchObject({ commit: 6 });
    expect(net.node("a").status().progress?.get("c")).toMatchObject({ state: "replicate", match: 6 });
  });

  it("ignores a snapshot older than what the follower has committed (§7)", () => {
    const net = compactedBehindFollower();
    const b = net.get("b");
    net.tick("a");
    const before = b.node.status();
    b.node.step({ ...net.sent.filter((m) => m.type === "app")[0], type: "snap", snapshot: b.log.snapshot(), term: 1 });
    expect(b.node.status()).toMatchObject({ commit: before.commit, lastIndex: before.lastIndex });
  });
});
