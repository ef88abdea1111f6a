// Leadership transfer (Raft thesis §3.10): the leader brings the target up to date, then tells it to campaign
// at once (timeout-now); it accepts no proposals meanwhile, and gives up after an election timeout.
import { describe, expect, it } from "vitest";
import { RaftError } from "../../src/raft/index.js";
import { bytes, Network } from "./helpers/network.js";

function threeNodes(): Network {
  const net = new Network(["a", "b", "c"]);
  net.campaign("a");
  return net;
}

describe("leadership transfer (thesis §3.10)", () => {
  it("hands leadership to an up-to-date follower in the next term (§3.10)", () => {
    const net = threeNodes();
    net.propose("a", "x");
    net.act("a", (n) => n.transferLeader("b"));
    expect(net.node("b").status()).toMatchObject({ role: "leader", term: 2 });
    expect(net.node("a").status()).toMatchObject({ role: "follower", lead: "b", term: 2 });
    // The target skipped pre-vote and voters granted despite their lease, because the campaign is a transfer.
    expect(net.sent.filter((m) => m.from === "b" && m.type === "pre-vote")).toEqual([]);
    expect(net.sent.some((m) => m.type === "timeout-now" && m.to === "b")).toBe(true);
  });

  it("first brings a lagging target up to date, then transfers (§3.10)", () => {
    const net = threeNodes();
    net.cut("a", "c");
    for (const x of ["1", "2", "3"]) net.propose("a", x);
    expect(net.node("a").status().progress?.get("c")?.match).toBe(1);
    net.heal();
    net.act("a", (n) => n.transferLeader("c"));
    expect(net.node("c").status()).toMatchObject({ role: "leader", term: 2 });
    net.propose("c", "4");
    net.tick("c");
    for (const id of ["a", "b", "c"]) expect(net.appliedData(id)).toEqual(["1", "2", "3", "4"]);
  });

  it("drops proposals during a transfer with RaftError transfer-in-progress (§3.10)", () => {
    const net = threeNodes();
    net.isolate("c");
    net.act("a", (n) => n.transferLeader("c"));
    expect(net.node("a").status().leadTransferee).toBe("c");
    let err: unknown;
    try {
      net.node("a").propose(bytes("x"));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RaftError);
    expect(err).toMatchObject({ code: "transfer-in-progress" });
  });

  it("aborts a transfer that has not finished within an election timeout, and accepts proposals again (§3.10)", () => {
    const net = threeNodes();
    net.isolate("c");
    net.act("a", (n) => n.transferLeader("c"));
    net.tick("a", 9);
    expect(net.node("a").status().leadTransferee).toBe("c");
    net.tick("b"); // keep b's answers flowing so a keeps its quorum
    net.tick("a");
    expect(net.node("a").status()).toMatchObject({ role: "leader", leadTransferee: "" });
    expect(() => net.propose("a", "after")).not.toThrow();
  });

  it("ignores a transfer to a learner, which cannot lead", () => {
    const net = threeNodes();
    net.add("d", { voters: ["a", "b", "c"] });
    net.act("a", (n) => n.proposeConfChange({ type: "add-learner", node: "d", context: "" }));
    net.act("a", (n) => n.transferLeader("d"));
    expect(net.node("a").status()).toMatchObject({ role: "leader", leadTransferee: "" });
  });
});
