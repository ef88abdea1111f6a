// Raft §5.2: leader election — randomized election timeouts, one vote per term, candidates step down for a
// leader of their term, and split votes resolve in a later term.
import { describe, expect, it } from "vitest";
import { message, NONE } from "../../src/raft/index.js";
import { Network, newTestNode, processReady } from "./helpers/network.js";

const ELECTION_TICK = 10;

function ticksUntilCampaign(seed: number): number {
  const n = newTestNode("a", { voters: ["a", "b", "c"] }, { seed, electionTick: ELECTION_TICK });
  for (let t = 1; t <= 3 * ELECTION_TICK; t++) {
    n.node.tick();
    if (n.node.status().role !== "follower") return t;
  }
  throw new Error("never campaigned");
}

describe("Raft §5.2 leader election", () => {
  it("elects exactly one leader from a fresh cluster by election timeouts alone (§5.2)", () => {
    const net = new Network(["a", "b", "c"]);
    for (let i = 0; i < 3 * ELECTION_TICK && !net.leader(); i++) net.tickAll();
    const leader = net.leader();
    expect(leader).toBeDefined();
    for (const id of ["a", "b", "c"]) {
      expect(net.node(id).status()).toMatchObject({ term: 1, lead: leader });
    }
    expect([...net.nodes.values()].filter((n) => n.node.status().role === "leader")).toHaveLength(1);
  });

  it("draws election timeouts in [electionTick, 2*electionTick) that differ across nodes (§5.2)", () => {
    const timeouts = Array.from({ length: 20 }, (_, i) => ticksUntilCampaign(i + 1));
    for (const t of timeouts) {
      expect(t).toBeGreaterThanOrEqual(ELECTION_TICK);
      expect(t).toBeLessThan(2 * ELECTION_TICK);
    }
    expect(new Set(timeouts).size).toBeGreaterThan(3);
  });

  it("draws the same timeouts from the same seed: the core is deterministic", () => {
    expect(ticksUntilCampaign(42)).toBe(ticksUntilCampaign(42));
  });

  it("grants at most one vote per term (§5.2)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"] }, { checkQuorum: false });
    n.node.step(message({ type: "vote", from: "b", to: "a", term: 1, index: 0, logTerm: 0 }));
    n.node.step(message({ type: "vote", from: "c", to: "a", term: 1, index: 0, logTerm: 0 }));
    // b asking again (a retransmission) is granted again: it is the same vote.
    n.node.step(message({ type: "vote", from: "b", to: "a", term: 1, index: 0, logTerm: 0 }));
    const answers = processReady(n).map((m) => [m.to, m.reject]);
    expect(answers).toEqual([
      ["b", false],
      ["c", true],
      ["b", false],
    ]);
    expect(n.log.getHardState()).toMatchObject({ term: 1, vote: "b" });
  });

  it("votes for itself when it becomes a candidate, so it rejects others in that term (§5.2)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"] }, { preVote: false });
    n.node.campaign();
    processReady(n);
    n.node.step(message({ type: "vote", from: "b", to: "a", term: 1, index: 5, logTerm: 1 }));
    expect(processReady(n)).toEqual([expect.objectContaining({ type: "vote-resp", to: "b", reject: true })]);
    expect(n.node.status()).toMatchObject({ role: "candidate", vote: "a" });
  });

  it("returns a candidate to follower when a leader of the same term appends to it (§5.2)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"] }, { preVote: false });
    n.node.campaign();
    expect(n.node.status()).toMatchObject({ role: "candidate", term: 1 });
    n.node.step(message({ type: "app", from: "b", to: "a", term: 1, index: 0, logTerm: 0 }));
    expect(n.node.status()).toMatchObject({ role: "follower", term: 1, lead: "b" });
  });

  it("survives a split vote: no leader in that term, then a leader in a later one (§5.2)", () => {
    const net = new Network(["a", "b", "c", "d"], { preVote: false });
    // a and b campaign at once; c hears only a and d hears only b, so each gets 2 of 4 votes.
    net.filter = (m) => !(m.type === "vote" && ((m.from === "a" && m.to === "d") || (m.from === "b" && m.to === "c")));
    net.node("a").campaign();
    net.node("b").campaign();
    net.settle();
    expect(net.leader()).toBeUndefined();
    expect(net.node("a").status()).toMatchObject({ role: "candidate", term: 1 });
    expect(net.node("b").status()).toMatchObject({ role: "candidate", term: 1 });
    net.heal();
    for (let i = 0; i < 4 * 10 && !net.leader(); i++) net.tickAll();
    const leader = net.leader();
    expect(leader).toBeDefined();
    expect(net.node(leader ?? NONE).status().term).toBeGreaterThanOrEqual(2);
  });
});
