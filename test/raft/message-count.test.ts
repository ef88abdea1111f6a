// How chatty the protocol is: an election plus ten agreements in a 3-node cluster, counting every message.
import { describe, expect, it } from "vitest";
import { Network } from "./helpers/network.js";

describe("message count", () => {
  it("elects a leader and agrees on 10 proposals in a 3-node cluster in 52 messages (§5.2, §5.3)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    for (let i = 0; i < 10; i++) net.propose("a", `cmd${i}`);
    expect(net.appliedData("a")).toHaveLength(10);
    // Election with pre-vote: 2 pre-votes + 2 answers + 2 votes + 2 answers = 8.
    // The new leader's empty entry: 2 appends + 2 acks = 4.
    // Each proposal: 2 appends + 2 acks = 4, so 40; the new commit index rides on the next append or heartbeat,
    // never on an extra message (only a follower that forwarded a proposal is told at once; none did here).
    const byType = new Map<string, number>();
    for (const m of net.sent) byType.set(m.type, (byType.get(m.type) ?? 0) + 1);
    expect(Object.fromEntries(byType)).toEqual({
      "pre-vote": 2,
      "pre-vote-resp": 2,
      vote: 2,
      "vote-resp": 2,
      app: 22,
      "app-resp": 22,
    });
    expect(net.sent.length).toBe(52);
  });
});
