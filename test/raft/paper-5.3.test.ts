// Raft §5.3: log replication — the leader appends, replicates and commits; followers check log matching, delete
// conflicting suffixes, and learn the commit index from the leader.
import { describe, expect, it } from "vitest";
import { message, type Entry, type NodeId } from "../../src/raft/index.js";
import { bytes, Network, newTestNode, processReady, seededRandom, text } from "./helpers/network.js";

function ent(index: number, term: number, data = ""): Entry {
  return { index, term, type: "normal", data: bytes(data) };
}

/** A follower "a" of a, b, c whose persisted log has entries of the given terms. */
function follower(terms: number[]) {
  const seed = newTestNode("a", { voters: ["a", "b", "c"] });
  seed.log.append(terms.map((t, i) => ent(i + 1, t, `t${t}i${i + 1}`)));
  seed.log.setHardState({ term: Math.max(0, ...terms), vote: "", commit: 0 });
  return newTestNode("a", { voters: ["a", "b", "c"] }, {}, seed.log);
}

function logOf(n: { log: { lastIndex(): number; entries(lo: number, hi: number, max: number): Entry[] } }): string[] {
  const last = n.log.lastIndex();
  return last === 0 ? [] : n.log.entries(1, last + 1, Infinity).map((e) => `${e.index}:${e.term}`);
}

describe("Raft §5.3 log replication", () => {
  it("appends a proposal on every server, commits it once a majority has it, and applies it (§5.3)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.propose("a", "x");
    expect(net.node("a").status()).toMatchObject({ commit: 2, lastIndex: 2 });
    expect(net.appliedData("a")).toEqual(["x"]);
    for (const id of ["b", "c"]) expect(logOf(net.get(id))).toEqual(["1:1", "2:1"]);
  });

  it("propagates the commit index to followers with the next heartbeat (§5.3)", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    net.propose("a", "x");
    net.tick("a");
    for (const id of ["b", "c"]) {
      expect(net.node(id).status().commit).toBe(2);
      expect(net.appliedData(id)).toEqual(["x"]);
    }
  });

  it("rejects an append whose previous entry does not match, with a hint to back up (§5.3)", () => {
    const n = follower([1, 1, 2]);
    n.node.step(message({ type: "app", from: "b", to: "a", term: 3, index: 3, logTerm: 3, entries: [ent(4, 3)] }));
    const [resp] = processReady(n);
    expect(resp).toMatchObject({ type: "app-resp", reject: true, index: 3, rejectHint: 3, logTerm: 2 });
    expect(logOf(n)).toEqual(["1:1", "2:1", "3:2"]);
  });

  it("deletes a conflicting suffix and appends the leader's entries (§5.3)", () => {
    const n = follower([1, 1, 2, 2, 2]);
    n.node.step(
      message({ type: "app", from: "b", to: "a", term: 3, index: 2, logTerm: 1, entries: [ent(3, 3, "new")], commit: 3 }),
    );
    const [resp] = processReady(n);
    expect(resp).toMatchObject({ type: "app-resp", reject: false, index: 3 });
    expect(logOf(n)).toEqual(["1:1", "2:1", "3:3"]);
    expect(n.node.status().commit).toBe(3);
  });

  it("keeps matching entries and the entries after them when an append is a stale duplicate (§5.3)", () => {
    const n = follower([1, 1, 1]);
    n.node.step(message({ type: "app", from: "b", to: "a", term: 1, index: 0, logTerm: 0, entries: [ent(1, 1, "t1i1")] }));
    expect(processReady(n)[0]).toMatchObject({ index: 1, reject: false });
    expect(logOf(n)).toEqual(["1:1", "2:1", "3:1"]);
  });

  it("overwrites a deposed leader's uncommitted entries with the new leader's log (§5.3, etcd fast back-up)", () => {
    // No leases: b votes for c at once although it heard from a recently.
    const net = new Network(["a", "b", "c"], { preVote: false, checkQuorum: false });
    net.campaign("a");
    net.isolate("a");
    net.propose("a", "lost1"); // appended by a alone in term 1: never committed
    net.propose("a", "lost2");
    net.campaign("c"); // b and c elect c in term 2
    net.propose("c", "kept");
    net.heal();
    net.tick("c"); // a learns of term 2 from the heartbeat, then c backs up and repairs a's log
    net.tick("c");
    expect(logOf(net.get("a"))).toEqual(logOf(net.get("c")));
    expect(logOf(net.get("a"))).toEqual(["1:1", "2:2", "3:2"]);
    expect(net.appliedData("a")).toEqual(["kept"]);
    const rejections = net.sent.filter((m) => m.type === "app-resp" && m.reject && m.from === "a");
    expect(rejections.length).toBeLessThanOrEqual(1); // the term hint skips both conflicting entries at once
  });

  it("keeps the Log Matching property over random histories of proposals, ticks and partitions (§5.3)", () => {
    let termsSeen = 0;
    for (let seed = 1; seed <= 20; seed++) termsSeen += checkRandomHistory(seed);
    expect(termsSeen).toBeGreaterThan(25); // leadership changed often across the histories
  });
});

function checkRandomHistory(seed: number): number {
  const ids = ["a", "b", "c", "d", "e"];
  const rnd = seededRandom(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const net = new Network(ids, { seed });
  let proposed = 0;
  for (let step = 0; step < 300; step++) {
    const r = rnd();
    if (r < 0.05) net.isolate(pick(ids));
    else if (r < 0.1) net.heal();
    else if (r < 0.15) net.filter = () => rnd() > 0.3;
    else if (r < 0.4) {
      try {
        net.propose(pick(ids), `p${proposed++}`);
      } catch {
        // No leader (or a transfer): dropped, loudly, as designed.
      }
    } else net.tickAll();
  }
  net.heal();
  for (let i = 0; i < 60; i++) net.tickAll();
  assertLogMatching(net, ids);
  assertAppliedPrefixes(net, ids);
  // After healing the cluster converges: everyone applied the same entries.
  const lens = ids.map((id) => net.get(id).applied.length);
  expect(new Set(lens).size, `seed ${seed}: applied lengths ${lens}`).toBe(1);
  // The history did something: several terms and many committed proposals.
  expect(net.appliedData("a").length, `seed ${seed}`).toBeGreaterThan(10);
  const terms = new Set(net.get("a").applied.map((e) => e.term));
  return terms.size;
}

/** §5.3 Log Matching: if two logs hold an entry with the same index and term, they are identical up to it. */
function assertLogMatching(net: Network, ids: NodeId[]): void {
  const logs = ids.map((id) => {
    const log = net.get(id).log;
    const ents = log.lastIndex() >= log.firstIndex() ? log.entries(log.firstIndex(), log.lastIndex() + 1, Infinity) : [];
    return new Map(ents.map((e) => [e.index, e]));
  });
  for (let i = 0; i < logs.length; i++) {
    for (let j = i + 1; j < logs.length; j++) {
      // The highest index where both logs have an entry of the same term…
      let k = 0;
      for (const [index, e] of logs[i]) if (index > k && logs[j].get(index)?.term === e.term) k = index;
      // …and every entry both hold up to it is identical.
      for (let index = 1; index <= k; index++) {
        const a = logs[i].get(index);
        const b = logs[j].get(index);
        if (a && b) expect(`${b.term}:${text(b.data)}`).toBe(`${a.term}:${text(a.data)}`);
      }
    }
  }
}

/** State Machine Safety (§5.4.3): every node applied a prefix of the same sequence. */
function assertAppliedPrefixes(net: Network, ids: NodeId[]): void {
  const seqs = ids.map((id) => net.get(id).applied.map((e) => `${e.index}:${e.term}:${text(e.data)}`));
  const longest = seqs.reduce((a, b) => (b.length > a.length ? b : a));
  for (const s of seqs) expect(longest.slice(0, s.length)).toEqual(s);
}
