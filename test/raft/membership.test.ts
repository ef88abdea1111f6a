// Membership changes one server at a time (Raft thesis §4.1, §4.2.1 learners, §4.2.2 removing the leader):
// add a learner, promote it once caught up, remove a server. A change takes effect when applied.
import { describe, expect, it } from "vitest";
import { message, type ConfChange } from "../../src/raft/index.js";
import { Network, newTestNode } from "./helpers/network.js";

function cc(type: ConfChange["type"], node: string): ConfChange {
  return { type, node, context: `addr-of-${node}` };
}

/** a leads a, b, c; d starts from the same bootstrap configuration and is added as a learner. */
function withLearner(): Network {
  const net = new Network(["a", "b", "c"]);
  net.campaign("a");
  net.add("d", { voters: ["a", "b", "c"] });
  net.act("a", (n) => n.proposeConfChange(cc("add-learner", "d")));
  return net;
}

describe("membership changes (thesis §4)", () => {
  it("adds a learner that receives the whole log, with its progress visible to the leader (§4.2.1)", () => {
    const net = withLearner();
    net.propose("a", "x");
    net.tick("a");
    const status = net.node("a").status();
    expect(status.confState).toEqual({ voters: ["a", "b", "c"], learners: ["d"] });
    expect(status.progress?.get("d")).toMatchObject({ isLearner: true, match: status.lastIndex, state: "replicate" });
    expect(net.appliedData("d")).toEqual(["x"]);
    expect(net.node("d").status().confState.learners).toEqual(["d"]);
  });

  it("never lets a learner campaign (§4.2.1)", () => {
    const net = withLearner();
    net.isolate("d");
    for (let i = 0; i < 50; i++) net.tick("d");
    expect(net.node("d").status()).toMatchObject({ role: "follower", term: 1 });
    expect(net.sent.filter((m) => m.from === "d" && (m.type === "vote" || m.type === "pre-vote"))).toEqual([]);
  });

  it("does not count a learner towards a commit quorum (§4.2.1)", () => {
    const net = withLearner();
    const before = net.node("a").status().commit;
    net.cut("a", "b");
    net.cut("a", "c");
    net.propose("a", "x"); // only the learner d acknowledges
    expect(net.node("a").status().progress?.get("d")?.match).toBe(net.node("a").status().lastIndex);
    expect(net.node("a").status().commit).toBe(before);
  });

  it("does not count a learner's vote (§4.2.1)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"], learners: ["d"] }, { preVote: false });
    n.node.campaign();
    n.node.step(message({ type: "vote-resp", from: "d", to: "a", term: 1 }));
    expect(n.node.status().role).toBe("candidate");
    n.node.step(message({ type: "vote-resp", from: "b", to: "a", term: 1 }));
    expect(n.node.status().role).toBe("leader");
  });

  it("promotes a caught-up learner to a voter that can then lead (§4.1)", () => {
    const net = withLearner();
    net.act("a", (n) => n.proposeConfChange(cc("promote", "d")));
    net.tick("a");
    expect(net.node("a").status().confState).toEqual({ voters: ["a", "b", "c", "d"], learners: [] });
    expect(net.node("d").status().confState.voters).toContain("d");
    net.act("a", (n) => n.transferLeader("d"));
    expect(net.node("d").status().role).toBe("leader");
  });

  it("removes a follower, after which the quorum is among the rest (§4.1)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.act("a", (n) => n.proposeConfChange(cc("remove", "c")));
    expect(net.node("a").status().confState.voters).toEqual(["a", "b"]);
    net.isolate("c");
    net.propose("a", "x");
    expect(net.appliedData("a")).toEqual(["x"]);
  });

  it("steps a removed leader down once the change is applied, and the rest elect a new leader (§4.2.2)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.act("a", (n) => n.proposeConfChange(cc("remove", "a")));
    expect(net.node("a").status()).toMatchObject({ role: "follower", lead: "" });
    for (const id of ["b", "c"]) expect(net.node(id).status().confState.voters).toEqual(["b", "c"]);
    for (let i = 0; i < 40 && !net.leader(); i++) net.tickAll();
    expect(["b", "c"]).toContain(net.leader());
    expect(net.node("a").status().role).toBe("follower"); // a is no longer a member: it never campaigns
  });

  it("refuses a second conf change while one is unapplied (thesis §4.1)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.isolate("a"); // the first change cannot commit, so it stays pending
    net.act("a", (n) => n.proposeConfChange(cc("add-learner", "d")));
    expect(() => net.node("a").proposeConfChange(cc("add-learner", "e"))).toThrow(
      expect.objectContaining({ code: "proposal-dropped" }),
    );
  });

  it("turns a forwarded second conf change into an empty entry, as etcd does (thesis §4.1)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.filter = (m) => !(m.type === "app-resp" && m.to === "a"); // keep the first change uncommitted
    net.act("a", (n) => n.proposeConfChange(cc("add-learner", "d")));
    net.act("b", (n) => n.proposeConfChange(cc("add-learner", "e")));
    net.heal();
    net.tick("a");
    net.tick("a");
    const applied = net.get("a").applied.map((e) => e.type);
    expect(applied).toEqual(["normal", "conf-change", "normal"]);
    expect(net.node("a").status().confState.learners).toEqual(["d"]);
  });

  it("refuses an invalid change at proposal time (promote a non-learner)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    expect(() => net.node("a").proposeConfChange(cc("promote", "b"))).toThrow(
      expect.objectContaining({ code: "proposal-dropped" }),
    );
  });
});
