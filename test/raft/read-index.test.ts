// Linearizable reads without the log (Raft thesis §6.4, etcd's ReadOnlySafe): the leader records its commit
// index, confirms it still leads with a heartbeat round, then the read may be served once applied up to it.
import { describe, expect, it } from "vitest";
import { bytes, Network, text } from "./helpers/network.js";

describe("read index (thesis §6.4)", () => {
  it("answers a read on the leader after a quorum acknowledged a heartbeat carrying its context (§6.4)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.propose("a", "x");
    net.act("a", (n) => n.readIndex(bytes("r1")));
    const rs = net.get("a").readStates;
    expect(rs.map((r) => [r.index, text(r.requestCtx)])).toEqual([[2, "r1"]]);
    const beats = net.sent.filter((m) => m.type === "heartbeat" && m.context && text(m.context) === "r1");
    expect(beats.map((m) => m.to)).toEqual(["b", "c"]);
  });

  it("does not answer a read while the leader cannot reach a quorum (§6.4)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.isolate("a");
    net.act("a", (n) => n.readIndex(bytes("r1")));
    net.tick("a", 3);
    expect(net.get("a").readStates).toEqual([]);
  });

  it("forwards a follower's read to the leader and hands the follower the leader's commit index (§6.4)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.propose("a", "x");
    net.act("b", (n) => n.readIndex(bytes("rb")));
    expect(net.sent.some((m) => m.type === "read-index" && m.from === "b" && m.to === "a")).toBe(true);
    expect(net.get("b").readStates.map((r) => [r.index, text(r.requestCtx)])).toEqual([[2, "rb"]]);
    expect(net.get("a").readStates).toEqual([]);
  });

  it("answers at once on a single-voter leader (§6.4)", () => {
    const net = new Network(["a"]);
    net.campaign("a");
    net.act("a", (n) => n.readIndex(bytes("solo")));
    expect(net.get("a").readStates.map((r) => r.index)).toEqual([1]);
    expect(net.sent.filter((m) => m.type === "heartbeat")).toEqual([]);
  });

  it("gives no read state before the leader has committed an entry of its term, then answers (§6.4)", () => {
    const net = new Network(["a", "b", "c"]);
    // Hold back the acknowledgements of a's first append, so its empty entry stays uncommitted.
    net.filter = (m) => m.type !== "app-resp";
    net.campaign("a");
    net.act("a", (n) => n.readIndex(bytes("early")));
    expect(net.node("a").status().commit).toBe(0);
    expect(net.get("a").readStates).toEqual([]);
    net.heal();
    net.tick("a"); // heartbeats → answers → appends acknowledged → commit → the read is confirmed
    expect(net.get("a").readStates.map((r) => [r.index, text(r.requestCtx)])).toEqual([[1, "early"]]);
  });

  it("refuses a read with no leader to ask, loudly (RaftError no-leader)", () => {
    const net = new Network(["a", "b", "c"]);
    expect(() => net.node("b").readIndex(bytes("r"))).toThrow(expect.objectContaining({ code: "no-leader" }));
  });
});
