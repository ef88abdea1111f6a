// Raft §5.1: terms act as a logical clock; a server that sees a higher term adopts it and reverts to follower;
// requests with a stale term are rejected or ignored.
import { describe, expect, it } from "vitest";
import { message, NONE } from "../../src/raft/index.js";
import { Network, newTestNode, processReady } from "./helpers/network.js";

describe("Raft §5.1 terms", () => {
  it("starts every server as a follower of term 0 with no leader (§5.1)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"] });
    expect(n.node.status()).toMatchObject({ role: "follower", term: 0, lead: NONE, vote: NONE });
  });

  it("turns a leader into a follower when it sees an append of a higher term (§5.1)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    expect(net.node("a").status()).toMatchObject({ role: "leader", term: 1 });
    net.node("a").step(message({ type: "app", from: "b", to: "a", term: 5, index: 0, logTerm: 0 }));
    expect(net.node("a").status()).toMatchObject({ role: "follower", term: 5, lead: "b" });
  });

  it("turns a candidate into a follower when it sees a higher term (§5.1)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"] }, { preVote: false });
    n.node.campaign();
    expect(n.node.status()).toMatchObject({ role: "candidate", term: 1 });
    n.node.step(message({ type: "heartbeat", from: "c", to: "a", term: 3 }));
    expect(n.node.status()).toMatchObject({ role: "follower", term: 3, lead: "c" });
  });

  it("adopts a higher term from a vote request without a leader lease, clearing its vote (§5.1)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"] }, { checkQuorum: false });
    n.node.step(message({ type: "vote", from: "b", to: "a", term: 4, index: 0, logTerm: 0 }));
    expect(n.node.status()).toMatchObject({ role: "follower", term: 4, vote: "b" });
  });

  it("answers a stale append with its own term so the stale leader steps down (§5.1, etcd)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"] });
    n.node.step(message({ type: "heartbeat", from: "b", to: "a", term: 3 }));
    processReady(n);
    n.node.step(message({ type: "app", from: "c", to: "a", term: 2, index: 0, logTerm: 0 }));
    const msgs = processReady(n);
    expect(msgs).toEqual([expect.objectContaining({ type: "app-resp", to: "c", term: 3, reject: false })]);
    expect(n.node.status()).toMatchObject({ term: 3, lead: "b" });
  });

  it("ignores a stale vote request and rejects a stale pre-vote (§5.1)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"] });
    n.node.step(message({ type: "heartbeat", from: "b", to: "a", term: 3 }));
    processReady(n);
    n.node.step(message({ type: "vote", from: "c", to: "a", term: 2, index: 9, logTerm: 2 }));
    expect(processReady(n)).toEqual([]);
    n.node.step(message({ type: "pre-vote", from: "c", to: "a", term: 2, index: 9, logTerm: 2 }));
    expect(processReady(n)).toEqual([expect.objectContaining({ type: "pre-vote-resp", term: 3, reject: true })]);
    expect(n.node.status().vote).toBe(NONE);
  });

  it("steps a stale leader down when it rejoins a cluster that moved on (§5.1)", () => {
    // Without CheckQuorum the isolated leader keeps believing it leads, and followers have no lease.
    const net = new Network(["a", "b", "c"], { checkQuorum: false });
    net.campaign("a");
    net.isolate("a");
    net.campaign("b");
    expect(net.node("b").status()).toMatchObject({ role: "leader", term: 2 });
    expect(net.node("a").status()).toMatchObject({ role: "leader", term: 1 });
    net.heal();
    net.tick("a"); // its heartbeat is answered with term 2
    expect(net.node("a").status()).toMatchObject({ role: "follower", term: 2 });
  });
});
