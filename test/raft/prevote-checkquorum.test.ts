// Pre-vote (Raft thesis §9.6) and CheckQuorum / leader leases (thesis §6.2, §4.2.3), as etcd-io/raft applies them.
import { describe, expect, it } from "vitest";
import { message } from "../../src/raft/index.js";
import { Network, processReady } from "./helpers/network.js";

describe("pre-vote and CheckQuorum (thesis §9.6, §6.2)", () => {
  it("keeps a partitioned node's term unchanged under pre-vote, and it rejoins without disrupting the leader (§9.6)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.isolate("c");
    for (let i = 0; i < 50; i++) net.tickAll();
    expect(net.node("c").status().term).toBe(1); // pre-votes never won, so the term never moved
    net.heal();
    for (let i = 0; i < 50; i++) net.tickAll();
    expect(net.node("a").status()).toMatchObject({ role: "leader", term: 1 });
    expect(net.node("c").status()).toMatchObject({ role: "follower", term: 1, lead: "a" });
  });

  it("without pre-vote or CheckQuorum, the same partition inflates terms and deposes the leader (contrast, §9.6)", () => {
    const net = new Network(["a", "b", "c"], { preVote: false, checkQuorum: false });
    net.campaign("a");
    net.isolate("c");
    for (let i = 0; i < 50; i++) net.tick("c");
    expect(net.node("c").status().term).toBeGreaterThan(2);
    net.heal();
    // c's next vote request carries its inflated term, which a adopts (no lease without CheckQuorum).
    for (let i = 0; i < 20 && net.node("a").status().term === 1; i++) net.tick("c");
    expect(net.node("a").status().term).toBeGreaterThan(1);
    expect(net.node("a").status().role).toBe("follower");
  });

  it("moves a pre-candidate to candidate on a pre-vote majority, and only then bumps the term (§9.6)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    const types = net.sent.filter((m) => m.from === "a").map((m) => `${m.type}@${m.term}`);
    expect(types.slice(0, 4)).toEqual(["pre-vote@1", "pre-vote@1", "vote@1", "vote@1"]);
    expect(net.node("a").status()).toMatchObject({ role: "leader", term: 1 });
  });

  it("ignores a higher-term vote request while it has heard from a leader within the election timeout (§4.2.3)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    const b = net.get("b");
    b.node.step(message({ type: "vote", from: "c", to: "b", term: 7, index: 99, logTerm: 5 }));
    expect(processReady(b).filter((m) => m.type === "vote-resp")).toEqual([]);
    expect(b.node.status()).toMatchObject({ term: 1, lead: "a" });
  });

  it("steps a leader down when it has not heard from a quorum for a whole election timeout (§6.2)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.isolate("a");
    // The first check, one election timeout in, still counts the answers from before the partition.
    net.tick("a", 10);
    expect(net.node("a").status().role).toBe("leader");
    net.tick("a", 10);
    expect(net.node("a").status()).toMatchObject({ role: "follower", lead: "" });
  });

  it("keeps a leader that hears from a quorum, even with one follower down (§6.2)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.isolate("c");
    for (let i = 0; i < 30; i++) {
      net.tick("a");
      net.tick("b");
    }
    expect(net.node("a").status()).toMatchObject({ role: "leader", term: 1 });
  });
});
