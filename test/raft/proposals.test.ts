// Client proposals (Raft §5.3, §8; etcd's proposal flow): refused loudly without a leader, forwarded by followers,
// batched into few appends, and throttled by the in-flight window and the uncommitted-bytes budget.
import { describe, expect, it } from "vitest";
import { mayDepartBeforePersist, RaftError, type Message } from "../../src/raft/index.js";
import { bytes, Network, newTestNode, processReady, text } from "./helpers/network.js";

function thrown(fn: () => void): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

describe("proposals (§5.3, §8)", () => {
  it("refuses a proposal with RaftError no-leader when no leader is known (§8)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"] });
    const err = thrown(() => n.node.propose(bytes("x")));
    expect(err).toBeInstanceOf(RaftError);
    expect(err).toMatchObject({ code: "no-leader" });
  });

  it("refuses a proposal with RaftError no-leader during an election (§8)", () => {
    const n = newTestNode("a", { voters: ["a", "b", "c"] });
    n.node.campaign();
    expect(n.node.status().role).toBe("pre-candidate");
    expect(thrown(() => n.node.propose(bytes("x")))).toMatchObject({ code: "no-leader" });
  });

  it("forwards a follower's proposal to the leader, which commits it (§8)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.propose("b", "via-b");
    expect(net.sent.filter((m) => m.type === "prop").map((m) => [m.from, m.to])).toEqual([["b", "a"]]);
    net.tick("a");
    for (const id of ["a", "b", "c"]) expect(net.appliedData(id)).toEqual(["via-b"]);
  });

  it("tells the forwarding follower the new commit index at once, not at the next heartbeat", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.tick("a"); // everyone knows the no-op is committed
    net.propose("b", "via-b");
    // No tick: b applies its own proposal (and could answer its client) from the leader's prompt append.
    expect(net.appliedData("b")).toEqual(["via-b"]);
    // c forwarded nothing: it learns the commit index from the next append or heartbeat, saving a message.
    expect(net.appliedData("c")).toEqual([]);
    net.tick("a");
    expect(net.appliedData("c")).toEqual(["via-b"]);
  });

  it("batches proposals made between two Readies into few appends, bounded by maxSizePerMsg (§5.3)", () => {
    const net = new Network(["a", "b", "c"], { maxSizePerMsg: 100 });
    net.campaign("a");
    const before = net.sent.length;
    for (let i = 0; i < 50; i++) net.node("a").propose(bytes(`p${String(i).padStart(8, "0")}`)); // 10 bytes each
    net.settle();
    const appsToB = net.sent.slice(before).filter((m) => m.type === "app" && m.to === "b" && m.entries.length > 0);
    // 500 bytes of payload at 100 per message: 5 messages (each holds up to the entry that crosses the limit).
    expect(appsToB.length).toBeLessThanOrEqual(5);
    expect(appsToB.reduce((n, m) => n + m.entries.length, 0)).toBe(50);
    expect(net.appliedData("a")).toHaveLength(50);
  });

  it("stops streaming to a follower whose in-flight window is full until it acknowledges (§5.3, etcd flow control)", () => {
    const net = new Network(["a", "b", "c"], { maxInflightMsgs: 2 });
    net.campaign("a");
    const held: Message[] = [];
    net.filter = (m) => {
      if (m.type === "app-resp" && m.from === "b") {
        held.push(m);
        return false;
      }
      return true;
    };
    const before = net.sent.length;
    for (let i = 1; i <= 5; i++) net.propose("a", `p${i}`);
    // Appends that carry entries (the others only tell b a new commit index and take no room in the window).
    const appsToB = () => net.sent.slice(before).filter((m) => m.type === "app" && m.to === "b" && m.entries.length > 0);
    expect(appsToB()).toHaveLength(2);
    expect(net.node("a").status().progress?.get("b")).toMatchObject({ state: "replicate", inflight: 2 });
    net.heal();
    for (const m of held.splice(0)) net.deliver(m);
    // The acknowledgements free the window; the three waiting entries go out together.
    expect(appsToB()).toHaveLength(3);
    expect(appsToB()[2].entries.map((e) => e.index)).toEqual([4, 5, 6]);
    expect(net.node("a").status().progress?.get("b")?.match).toBe(6);
  });

  it("probes a follower one append at a time until it answers (§5.3, etcd probe state)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.act("a", (n) => n.reportUnreachable("b"));
    expect(net.node("a").status().progress?.get("b")?.state).toBe("probe");
    net.isolate("b");
    const before = net.sent.length;
    for (let i = 1; i <= 3; i++) net.propose("a", `p${i}`);
    expect(net.sent.slice(before).filter((m) => m.type === "app" && m.to === "b")).toHaveLength(1);
  });

  it("drops a proposal beyond the uncommitted-bytes budget with RaftError proposal-dropped (etcd)", () => {
    const net = new Network(["a", "b", "c"], { maxUncommittedEntriesSize: 16 });
    net.campaign("a");
    net.isolate("a");
    net.propose("a", "12345678");
    net.propose("a", "abcdefgh");
    const err = thrown(() => net.node("a").propose(bytes("x")));
    expect(err).toMatchObject({ code: "proposal-dropped" });
    net.heal();
    net.tick("a"); // once the backlog commits and applies, the budget frees up
    expect(() => net.propose("a", "x")).not.toThrow();
  });

  describe("the leader's own write overlaps its appends (thesis §10.2.1)", () => {
    /** A leader "a" with a proposal whose Ready is taken but not yet persisted; followers b and c have the append. */
    function leaderWithUnpersistedEntry() {
      const net = new Network(["a", "b", "c"]);
      net.campaign("a");
      const a = net.get("a");
      const committedBefore = a.node.status().commit;
      a.node.propose(bytes("x"));
      const rd = a.node.ready();
      const index = rd.entries[0].index;
      const appTo = (id: string) => rd.messages.find((m) => m.type === "app" && m.to === id && m.entries.length > 0) as Message;
      /** Follower `id` persists the append and answers; the leader takes the answer (its own write still in flight). */
      const followerAcks = (id: string) => {
        const f = net.get(id);
        f.node.step(appTo(id));
        for (const m of processReady(f)) if (m.to === "a") a.node.step(m);
      };
      const leaderPersists = () => {
        a.log.append(rd.entries);
        if (rd.hardState) a.log.setHardState(rd.hardState);
        a.node.advance(rd);
      };
      return { a, rd, index, committedBefore, followerAcks, leaderPersists };
    }

    it("hands out the appends in a Ready that may depart before the leader persists them", () => {
      const { rd } = leaderWithUnpersistedEntry();
      const apps = rd.messages.filter((m) => m.type === "app" && m.entries.length > 0);
      expect(apps.map((m) => m.to).sort()).toEqual(["b", "c"]);
      expect(apps.every(mayDepartBeforePersist)).toBe(true);
      // Promises about durable state never do.
      for (const type of ["app-resp", "vote", "vote-resp", "pre-vote", "pre-vote-resp"] as const) {
        expect(mayDepartBeforePersist({ ...apps[0], type })).toBe(false);
      }
    });

    it("does not commit on one follower's copy while the leader's own is not durable, and does once it is", () => {
      const { a, index, committedBefore, followerAcks, leaderPersists } = leaderWithUnpersistedEntry();
      followerAcks("b");
      expect(a.node.status().commit).toBe(committedBefore); // 1 durable copy of 3
      leaderPersists();
      expect(a.node.status().commit).toBe(index); // 2 of 3
      const next = a.node.ready();
      expect(next.committedEntries.map((e) => text(e.data))).toContain("x");
    });

    it("commits on two followers' copies alone, but applies only after its own copy is durable", () => {
      const { a, index, followerAcks, leaderPersists } = leaderWithUnpersistedEntry();
      followerAcks("b");
      followerAcks("c");
      expect(a.node.status().commit).toBe(index); // 2 durable copies of 3, without the leader's
      leaderPersists();
      const next = a.node.ready();
      expect(next.committedEntries.map((e) => text(e.data))).toContain("x");
    });
  });
});
