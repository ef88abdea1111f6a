// Raft §5.4: safety — the election restriction (§5.4.1) and committing entries from previous terms (§5.4.2,
// Figure 8).
import { describe, expect, it } from "vitest";
import { message, type Entry } from "../../src/raft/index.js";
import { newTestNode, processReady, type NodeOptions } from "./helpers/network.js";

function entries(...terms: number[]): Entry[] {
  return terms.map((term, i) => ({ term, index: i + 1, type: "normal", data: new Uint8Array(0) }));
}

/** Node "a" of a, b, c whose persisted log has entries of the given terms and whose term is the last of them. */
function nodeWithLog(terms: number[], opts: NodeOptions = {}) {
  const n = newTestNode("a", { voters: ["a", "b", "c"] }, { checkQuorum: false, preVote: false, ...opts });
  n.log.append(entries(...terms));
  n.log.setHardState({ term: terms[terms.length - 1] ?? 0, vote: "", commit: 0 });
  return newTestNode("a", { voters: ["a", "b", "c"] }, { checkQuorum: false, preVote: false, ...opts }, n.log);
}

describe("Raft §5.4 safety", () => {
  it("rejects a vote for a candidate whose last term is older, however long its log (§5.4.1)", () => {
    const n = nodeWithLog([1, 2]);
    n.node.step(message({ type: "vote", from: "b", to: "a", term: 3, index: 10, logTerm: 1 }));
    expect(processReady(n)).toEqual([expect.objectContaining({ type: "vote-resp", to: "b", reject: true })]);
  });

  it("rejects a vote for a candidate with the same last term but a shorter log (§5.4.1)", () => {
    const n = nodeWithLog([1, 2, 2]);
    n.node.step(message({ type: "vote", from: "b", to: "a", term: 3, index: 2, logTerm: 2 }));
    expect(processReady(n)).toEqual([expect.objectContaining({ reject: true })]);
  });

  it("grants a vote to a candidate at least as up to date (§5.4.1)", () => {
    for (const [index, logTerm] of [
      [2, 2],
      [1, 3],
    ]) {
      const n = nodeWithLog([1, 2]);
      n.node.step(message({ type: "vote", from: "b", to: "a", term: 3, index, logTerm }));
      expect(processReady(n)).toEqual([expect.objectContaining({ type: "vote-resp", reject: false, term: 3 })]);
    }
  });

  it("applies the election restriction to pre-votes too (§5.4.1, thesis §9.6)", () => {
    const n = nodeWithLog([1, 2], { preVote: true });
    n.node.step(message({ type: "pre-vote", from: "b", to: "a", term: 3, index: 5, logTerm: 1 }));
    expect(processReady(n)).toEqual([expect.objectContaining({ type: "pre-vote-resp", reject: true })]);
    expect(n.node.status().term).toBe(2);
  });

  it("does not commit an entry of a previous term by counting replicas (§5.4.2, Figure 8)", () => {
    // a leads term 3 with an uncommitted entry of term 2 at index 2 (Figure 8 (c)).
    const n = nodeWithLog([1, 2]);
    n.node.campaign();
    n.node.step(message({ type: "vote-resp", from: "b", to: "a", term: 3 }));
    expect(n.node.status()).toMatchObject({ role: "leader", term: 3, lastIndex: 3 });
    processReady(n);
    // b now holds index 2 as well: a majority (a, b) has the term-2 entry, yet it must not commit.
    n.node.step(message({ type: "app-resp", from: "b", to: "a", term: 3, index: 2 }));
    expect(n.node.status().commit).toBe(0);
    // Once b holds the leader's own term-3 entry, everything up to it commits (§5.4.2).
    n.node.step(message({ type: "app-resp", from: "b", to: "a", term: 3, index: 3 }));
    expect(n.node.status().commit).toBe(3);
  });

  it("never lets a follower's commit index run past what it matched (Figure 8 (d) would otherwise lose it)", () => {
    const n = nodeWithLog([1, 2, 2]);
    // A leader of term 3 whose log diverges at index 2 sends a heartbeat claiming commit 1 only (min(match, commit)).
    n.node.step(message({ type: "heartbeat", from: "c", to: "a", term: 3, commit: 1 }));
    expect(n.node.status().commit).toBe(1);
    // An append that fails the log-matching check commits nothing.
    n.node.step(message({ type: "app", from: "c", to: "a", term: 3, index: 2, logTerm: 3, commit: 3 }));
    expect(n.node.status().commit).toBe(1);
  });
});
