// Scenario tests on SimCluster (real RaftNodes on the simulated network, clock and disk), in the spirit of the
// MIT 6.824 Raft tests and etcd's network tests. Every step of every scenario also runs the safety checkers.
// Time is ticks: there are no wall-clock assertions.
import { describe, expect, it } from "vitest";
import { checkExactlyOnce } from "../../../src/raft/sim/checkers.js";
import { SimCluster } from "../../../src/raft/sim/cluster.js";
import type { KvResult } from "../../../src/raft/sim/kv-machine.js";
import { Prng } from "../../../src/raft/sim/prng.js";
import { converged } from "../../../src/raft/sim/run.js";
import { NO_FAULTS } from "../../../src/raft/sim/sim-network.js";
import { RaftError } from "../../../src/raft/types.js";

async function cluster(size = 3, seed = 1, extra: { snapshotThreshold?: number; compactionMargin?: number } = {}): Promise<SimCluster> {
  return SimCluster.create({ seed, random: new Prng(seed), size, snapshotThreshold: 1000, compactionMargin: 5, ...extra });
}

async function until(c: SimCluster, what: string, done: () => boolean, maxTicks = 300): Promise<void> {
  for (let t = 0; t < maxTicks; t++) {
    if (done()) return;
    await c.tick(1);
  }
  if (!done()) throw new Error(`not ${what} within ${maxTicks} ticks\n${c.describe()}`);
}

async function elect(c: SimCluster): Promise<string> {
  await until(c, "a leader", () => c.leader() !== undefined);
  return c.leader() as string;
}

async function settled(c: SimCluster, maxTicks = 500): Promise<void> {
  c.network.faults = { ...NO_FAULTS };
  await c.heal();
  for (const id of c.crashedIds()) await c.restart(id);
  await until(c, "converged", () => converged(c), maxTicks);
  const members = new Set([...c.membership().voters, ...c.membership().learners]);
  expect(checkExactlyOnce(c.history, c.acked, c.views().filter((v) => members.has(v.id)))).toBeUndefined();
}

/** Proposes on `id` and ticks until acknowledged; returns the result (undefined when not within the bound). */
async function agree(c: SimCluster, id: string, maxTicks = 100): Promise<KvResult | undefined> {
  let result: KvResult | undefined;
  let done = false;
  void c.propose(id).then((r) => {
    result = r;
    done = true;
  });
  for (let t = 0; t < maxTicks && !done; t++) await c.tick(1);
  return result;
}

function others(c: SimCluster, id: string): string[] {
  return c.liveIds().filter((x) => x !== id);
}

describe("raft scenarios (simulated cluster)", () => {
  it("elects exactly one leader initially and every node follows it", async () => {
    const c = await cluster(3);
    const lead = await elect(c);
    await c.tick(5);
    const term = c.raft(lead).status().term;
    for (const id of c.ids()) expect(c.raft(id).status()).toMatchObject({ lead, term });
    expect(c.liveIds().filter((id) => c.raft(id).status().role === "leader")).toEqual([lead]);
  });

  it("re-elects a new leader in a higher term after the leader is lost", async () => {
    const c = await cluster(3);
    const old = await elect(c);
    const term = c.raft(old).status().term;
    await c.crash(old);
    await until(c, "a new leader", () => c.leader() !== undefined);
    expect(c.leader()).not.toBe(old);
    expect(c.raft(c.leader() as string).status().term).toBeGreaterThan(term);
  });

  it("elects no leader without a majority", async () => {
    const c = await cluster(3);
    const lead = await elect(c);
    for (const id of others(c, lead)) await c.crash(id);
    await c.tick(100);
    expect(c.leader()).toBeUndefined();
  });

  it("agrees despite a failed follower", async () => {
    const c = await cluster(3);
    const lead = await elect(c);
    await c.crash(others(c, lead)[0]);
    for (let i = 0; i < 5; i++) expect(await agree(c, lead)).toBeDefined();
    await settled(c);
  });

  it("does not agree without a majority (proposals are not acknowledged)", async () => {
    const c = await cluster(5);
    const lead = await elect(c);
    for (const id of others(c, lead).slice(0, 3)) await c.crash(id);
    expect(await agree(c, lead, 100)).toBeUndefined();
    expect(c.acked).toEqual([]);
  });

  it("fails a proposal that cannot commit with a clear error after the request timeout, instead of hanging", async () => {
    const c = await cluster(3);
    const lead = await elect(c);
    for (const id of others(c, lead)) await c.crash(id);
    let outcome: unknown;
    c.raft(lead).propose(new TextEncoder().encode(JSON.stringify({ op: "set", key: "x", value: "y", id: "lonely" }))).then(
      () => (outcome = "applied"),
      (e: unknown) => (outcome = e),
    );
    await c.tick(60); // the default timeout is 5 election timeouts of 10 ticks
    expect(outcome).toBeInstanceOf(RaftError);
    expect((outcome as RaftError).code).toBe("unavailable");
    expect((outcome as RaftError).message).toMatch(/may or may not take effect/);
  });

  it("orders concurrent proposals from every node identically", async () => {
    const c = await cluster(5);
    await elect(c);
    for (let i = 0; i < 30; i++) void c.propose(c.ids()[i % 5]);
    await until(c, "30 acknowledged", () => c.acked.length === 30);
    await settled(c);
  });

  it("replaces the uncommitted entries of a partitioned old leader when it rejoins", async () => {
    const c = await cluster(5);
    const old = await elect(c);
    await c.partition([[old]]);
    for (let i = 0; i < 5; i++) void c.propose(old);
    await c.tick(2);
    const rest = others(c, old);
    await until(c, "a majority leader", () => rest.some((id) => c.raft(id).status().role === "leader"));
    for (let i = 0; i < 5; i++) expect(await agree(c, c.leader() as string)).toBeDefined();
    await settled(c);
    expect(c.raft(old).status().role).toBe("follower");
    expect(c.acked).toHaveLength(5);
  });

  it("backs up quickly over many conflicting entries", async () => {
    const c = await cluster(5);
    const old = await elect(c);
    const buddy = others(c, old)[0];
    await c.partition([[old, buddy]]);
    for (let i = 0; i < 60; i++) void c.propose(old);
    await c.tick(3);
    const majority = c.ids().filter((id) => id !== old && id !== buddy);
    await until(c, "a majority leader", () => majority.some((id) => c.raft(id).status().role === "leader"));
    const lead = majority.find((id) => c.raft(id).status().role === "leader") as string;
    for (let i = 0; i < 60; i++) void c.propose(lead);
    await until(c, "60 acknowledged", () => c.acked.length >= 60);
    const before = c.network.sent.get("app") ?? 0;
    const ticks = c.network.now;
    await settled(c);
    expect(c.network.now - ticks).toBeLessThan(60);
    expect((c.network.sent.get("app") ?? 0) - before).toBeLessThan(400);
  });

  for (const who of ["all nodes", "the leader", "a follower"] as const) {
    it(`persists state across restarts of ${who}`, async () => {
      const c = await cluster(3);
      const lead = await elect(c);
      for (let i = 0; i < 5; i++) expect(await agree(c, lead)).toBeDefined();
      const victims = who === "all nodes" ? c.ids() : who === "the leader" ? [lead] : [others(c, lead)[0]];
      for (const id of victims) await c.crash(id);
      for (const id of victims) await c.restart(id);
      await elect(c);
      expect(await agree(c, c.leader() as string)).toBeDefined();
      await settled(c);
      expect(c.acked).toHaveLength(6);
    });
  }

  for (const unreliable of [false, true]) {
    it(`survives Figure 8 (${unreliable ? "unreliable" : "reliable"} network)`, async () => {
      const random = new Prng(unreliable ? 88 : 8);
      const c = await cluster(5, unreliable ? 88 : 8);
      if (unreliable) c.network.faults = { loss: 0.1, duplicate: 0.05, maxDelay: 3 };
      for (let round = 0; round < 40; round++) {
        const lead = c.leader();
        if (lead) void c.propose(lead);
        await c.tick(random.int(1, random.chance(0.1) ? 12 : 3));
        if (lead && c.node(lead).raft && random.chance(0.5)) await c.crash(lead);
        if (c.liveIds().length < 3) await c.restart(random.pick(c.crashedIds()));
      }
      for (const id of c.crashedIds()) await c.restart(id);
      await settled(c, 1000);
    });
  }

  it("keeps every acknowledged proposal through churn while clients submit throughout", async () => {
    const random = new Prng(21);
    const c = await cluster(5, 21);
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 2; i++) if (c.liveIds().length) void c.propose(random.pick(c.liveIds()));
      if (random.chance(0.2) && c.liveIds().length > 2) await c.crash(random.pick(c.liveIds()));
      if (random.chance(0.3) && c.crashedIds().length) await c.restart(random.pick(c.crashedIds()));
      if (random.chance(0.1)) await c.partition([random.shuffle(c.ids()).slice(0, 2)]);
      if (random.chance(0.2)) await c.heal();
      await c.tick(random.int(1, 5));
    }
    for (const id of c.crashedIds()) await c.restart(id);
    await settled(c, 1000);
    expect(c.acked.length).toBeGreaterThan(20);
  });

  it("installs a snapshot on a lagging follower", async () => {
    const c = await cluster(3, 5, { snapshotThreshold: 10, compactionMargin: 2 });
    const lead = await elect(c);
    const slow = others(c, lead)[0];
    await c.slowFollower(slow, true);
    for (let i = 0; i < 40; i++) void c.propose(lead);
    await until(c, "40 acknowledged", () => c.acked.length === 40);
    expect(c.node(lead).storage.firstIndex()).toBeGreaterThan(c.node(slow).storage.lastIndex() + 1);
    await c.slowFollower(slow, false);
    await settled(c);
    expect(c.node(slow).snapshots.saves).toBeGreaterThan(0);
    expect(c.node(slow).storage.firstIndex()).toBeGreaterThan(1);
  });

  it("installs a snapshot on a crashed follower when it restarts", async () => {
    const c = await cluster(3, 6, { snapshotThreshold: 10, compactionMargin: 2 });
    const lead = await elect(c);
    const victim = others(c, lead)[0];
    await c.crash(victim);
    const lastBefore = c.node(victim).storage.lastIndex();
    for (let i = 0; i < 40; i++) void c.propose(lead);
    await until(c, "40 acknowledged", () => c.acked.length === 40);
    await c.restart(victim);
    await settled(c);
    expect(c.node(victim).storage.firstIndex()).toBeGreaterThan(lastBefore + 1);
  });

  it("recovers when all nodes crash repeatedly, with snapshots", async () => {
    const c = await cluster(3, 9, { snapshotThreshold: 7, compactionMargin: 1 });
    for (let round = 0; round < 8; round++) {
      const lead = await elect(c);
      for (let i = 0; i < 6; i++) void c.propose(lead);
      await c.tick(round % 3);
      for (const id of c.ids()) await c.crash(id);
      for (const id of c.ids()) await c.restart(id);
    }
    await settled(c, 1000);
    expect(c.acked.length).toBeGreaterThan(0);
  });

  it("changes membership under load: add a learner, promote it, remove a voter", async () => {
    const c = await cluster(3, 12, { snapshotThreshold: 15, compactionMargin: 3 });
    const lead = await elect(c);
    const load = async (n: number) => {
      for (let i = 0; i < n; i++) void c.propose(c.leader() ?? lead);
      await c.tick(2);
    };
    await load(10);
    const { id: added, done: addDone } = await c.addLearner(c.leader() as string);
    await load(10);
    await until(c, "the learner added", () => c.membership().learners.includes(added));
    expect(await addDone).toBe(true);
    await until(c, "the learner caught up", () => c.raft(added).status().applied >= c.raft(c.leader() as string).status().commit - 2);
    const { done: promoted } = await c.promote(c.leader() as string, added);
    await load(10);
    expect(await promoted).toBe(true);
    const victim = c.membership().voters.find((id) => id !== c.leader() && id !== added) as string;
    const { done: removed } = await c.remove(c.leader() as string, victim);
    await load(10);
    await until(c, "the voter removed", () => !c.membership().voters.includes(victim));
    expect(await removed).toBe(true);
    await settled(c, 1000);
    expect(c.membership().voters.sort()).toEqual(c.ids().filter((id) => id !== victim).sort());
  });

  it("refuses to promote a learner that has not caught up", async () => {
    const c = await cluster(3, 16);
    const lead = await elect(c);
    for (let i = 0; i < 5; i++) await agree(c, lead);
    const { id: learner, done } = await c.addLearner(lead);
    await c.crash(learner);
    await until(c, "the learner added", () => c.membership().learners.includes(learner));
    expect(await done).toBe(true);
    for (let i = 0; i < 5; i++) await agree(c, lead);
    expect(c.raft(lead).caughtUp(learner)).toBe(false);
    await expect(c.raft(lead).promote(learner)).rejects.toThrow(/has not caught up yet/);
    await c.restart(learner);
    await until(c, "the learner caught up", () => c.raft(lead).caughtUp(learner));
    const { done: promoted } = await c.promote(lead, learner);
    await until(c, "the learner promoted", () => c.membership().voters.includes(learner));
    expect(await promoted).toBe(true);
  });

  it("answers a read barrier only after applying everything committed before it", async () => {
    const c = await cluster(3, 14);
    const lead = await elect(c);
    const follower = others(c, lead)[0];
    for (let i = 0; i < 10; i++) void c.propose(lead);
    await c.deliver();
    const commit = c.raft(lead).status().commit;
    let answered = false;
    void c.readBarrier(follower).then((ok) => (answered = ok));
    await until(c, "the read answered", () => answered);
    expect(c.raft(follower).status().applied).toBeGreaterThanOrEqual(commit);
  });

  it("fails a read barrier with no-leader on an isolated node", async () => {
    const c = await cluster(3, 15);
    const lead = await elect(c);
    const follower = others(c, lead)[0];
    await c.partition([[follower]]);
    await until(c, "the isolated node without a leader", () => c.raft(follower).status().lead === "");
    const error = await c.raft(follower).readBarrier().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(RaftError);
    expect((error as RaftError).code).toBe("no-leader");
  });

  it("elects a leader and agrees 10 times in a 3-node cluster within a small message budget", async () => {
    const c = await cluster(3, 16);
    while (!c.leader()) await c.tick(1);
    const afterElection = [...c.network.sent.values()].reduce((a, b) => a + b, 0);
    for (let i = 0; i < 10; i++) {
      const before = c.acked.length;
      void c.propose(c.leader() as string);
      for (let round = 0; round < 10 && c.acked.length === before; round++) await c.deliver();
      expect(c.acked.length).toBe(before + 1);
    }
    const total = [...c.network.sent.values()].reduce((a, b) => a + b, 0);
    // Pre-vote and vote rounds (8), the leader's no-op append and one heartbeat round with answers (8).
    expect(afterElection).toBeLessThanOrEqual(16);
    // Each agreement: one append to each follower and its answer (the commit rides on the next message).
    expect(total).toBeLessThanOrEqual(16 + 10 * 4 + 4);
  });
});
