// The building blocks of the core, each against the rule it implements: majority arithmetic (§5.2, §5.3), the
// in-flight window and per-peer progress (etcd flow control), the in-memory log, and restarting from it (§5.1).
import { describe, expect, it } from "vitest";
import { committedIndex, Inflights, MemoryLog, Progress, RaftError, voteResult, type Entry } from "../../src/raft/index.js";
import { RaftLog } from "../../src/raft/raft-log.js";
import { bytes, Network, newTestNode, processReady } from "./helpers/network.js";

function ents(from: number, terms: number[]): Entry[] {
  return terms.map((term, i) => ({ index: from + i, term, type: "normal", data: bytes(`e${from + i}`) }));
}

describe("quorum arithmetic (§5.2, §5.3)", () => {
  it("commits the index a majority of voters has matched", () => {
    const match: Record<string, number> = { a: 5, b: 3, c: 1, d: 4, e: 2 };
    expect(committedIndex(["a", "b", "c"], (id) => match[id])).toBe(3);
    expect(committedIndex(["a", "b", "c", "d"], (id) => match[id])).toBe(3);
    expect(committedIndex(["a", "b", "c", "d", "e"], (id) => match[id])).toBe(3);
    expect(committedIndex(["a"], (id) => match[id])).toBe(5);
    expect(committedIndex([], () => 9)).toBe(0);
  });

  it("declares an election won, lost or pending", () => {
    const votes: Record<string, boolean | undefined> = { a: true, b: false };
    expect(voteResult(["a", "b", "c"], (id) => votes[id])).toBe("pending");
    expect(voteResult(["a", "b", "c"], (id) => (id === "c" ? true : votes[id]))).toBe("won");
    expect(voteResult(["a", "b", "c"], (id) => (id === "c" ? false : votes[id]))).toBe("lost");
    expect(voteResult(["a", "b", "c", "d"], (id) => (id === "c" ? true : votes[id]))).toBe("pending");
  });
});

describe("flow control (etcd tracker)", () => {
  it("fills the in-flight window by count or bytes and frees it on acknowledgement", () => {
    const byCount = new Inflights(2);
    byCount.add(3, 10);
    byCount.add(5, 10);
    expect(byCount.full()).toBe(true);
    expect(() => byCount.add(6, 1)).toThrow();
    byCount.freeLE(4);
    expect([byCount.count(), byCount.full()]).toEqual([1, false]);
    const byBytes = new Inflights(100, 25);
    byBytes.add(1, 20);
    expect(byBytes.full()).toBe(false);
    byBytes.add(2, 10);
    expect(byBytes.full()).toBe(true);
    byBytes.freeLE(2);
    expect([byBytes.count(), byBytes.bytes()]).toEqual([0, 0]);
  });

  it("backs up a probing follower using its hint, and ignores stale rejections", () => {
    const pr = new Progress({ next: 11, isLearner: false, maxInflight: 4, maxInflightBytes: 0 });
    expect(pr.maybeDecrTo(7, 5)).toBe(false); // not the probe we are waiting on
    expect(pr.maybeDecrTo(10, 4)).toBe(true);
    expect(pr.next).toBe(5);
    pr.maybeUpdate(6);
    pr.becomeReplicate();
    expect(pr.next).toBe(7);
    pr.sentEntries(3, 30);
    expect([pr.next, pr.inflights.count()]).toEqual([10, 1]);
    expect(pr.maybeDecrTo(5, 0)).toBe(false); // at or below match: stale
    expect(pr.maybeDecrTo(8, 0)).toBe(true);
    expect(pr.next).toBe(7);
  });
});

describe("MemoryLog (etcd MemoryStorage)", () => {
  it("appends with truncation, compacts behind a snapshot, and reports compacted reads", () => {
    const log = new MemoryLog({ voters: ["a"] });
    log.append(ents(1, [1, 1, 1, 1]));
    log.append(ents(3, [2])); // truncates 3..4
    expect([log.firstIndex(), log.lastIndex(), log.term(3)]).toEqual([1, 3, 2]);
    log.createSnapshot(2, bytes("s"));
    log.compact(2);
    expect([log.firstIndex(), log.term(2)]).toEqual([3, 1]);
    expect(() => log.entries(2, 4, Infinity)).toThrow(RaftError);
    expect(log.entries(3, 4, Infinity).map((e) => e.index)).toEqual([3]);
    expect(log.snapshot().meta).toMatchObject({ index: 2, term: 1, confState: { voters: ["a"] } });
  });

  it("limits entries by bytes but always returns at least one", () => {
    const log = new MemoryLog();
    log.append(ents(1, [1, 1, 1]));
    expect(log.entries(1, 4, 0)).toHaveLength(1);
    expect(log.entries(1, 4, 4)).toHaveLength(2);
  });

  it("finds the last index whose term is at most a given term (etcd fast back-up)", () => {
    const log = new MemoryLog();
    log.append(ents(1, [1, 1, 2, 2, 4]));
    const raftLog = new RaftLog(log, Infinity);
    expect(raftLog.findConflictByTerm(5, 3)).toEqual({ index: 4, term: 2 });
    expect(raftLog.findConflictByTerm(5, 1)).toEqual({ index: 2, term: 1 });
    expect(raftLog.findConflictByTerm(5, 0)).toEqual({ index: 0, term: 0 });
  });
});

describe("restart (§5.1)", () => {
  it("restores term, vote and commit from the persisted log and applies only what was not yet applied", () => {
    const net = new Network(["a", "b", "c"]);
    net.campaign("a");
    for (const x of ["1", "2", "3"]) net.propose("a", x);
    const old = net.get("a");
    expect(old.node.status()).toMatchObject({ term: 1, commit: 4, applied: 4 });
    const restarted = newTestNode("a", {}, { applied: 2 }, old.log);
    expect(restarted.node.status()).toMatchObject({ role: "follower", term: 1, vote: "a", commit: 4, applied: 2 });
    processReady(restarted);
    expect(restarted.applied.map((e) => e.index)).toEqual([3, 4]);
  });

  it("rejects a configuration whose election timeout does not exceed the heartbeat interval", () => {
    const log = new MemoryLog({ voters: ["a"] });
    expect(() => newTestNode("a", {}, { electionTick: 1, heartbeatTick: 1 }, log)).toThrow(/electionTick/);
  });
});
