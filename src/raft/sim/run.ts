// One simulator run: runSeed(seed) picks the cluster size, workload and faults from the seed, then runs one
// pipeline:  plan → create cluster → SAFETY phase (random operations under faults, checkers after every step)
// → LIVENESS phase (heal, restart, no faults; tick until every acknowledged proposal is applied on every live
// member and the logs converge) → exactly-once check. A seed replays exactly: same plan, same trace hash.
//
// Failures are typed: SafetyViolation (a checker fired), LivenessFailure (no convergence within the bound),
// SimCrash (an exception escaped the core, the driver or the harness).
import { checkExactlyOnce } from "./checkers.js";
import { SafetyViolation, SimCluster } from "./cluster.js";
import { Prng } from "./prng.js";
import { NO_FAULTS, type NetworkFaults } from "./sim-network.js";

export { SafetyViolation };

export class LivenessFailure extends Error {
  override name = "LivenessFailure";
}

export class SimCrash extends Error {
  override name = "SimCrash";
}

export interface RunOptions {
  /** Safety-phase steps (random operations); default 300. */
  steps?: number;
  /** Ticks the liveness phase may take to converge; default 2000. */
  livenessTicks?: number;
  verbose?: boolean;
  /** With verbose: log every delivered message. */
  traceMessages?: boolean;
  log?: (line: string) => void;
}

export interface Plan {
  size: number;
  steps: number;
  faults: NetworkFaults;
  crashWeight: number;
  partitionWeight: number;
  membership: boolean;
  snapshotThreshold: number;
  compactionMargin: number;
  /** Small sizes split appends into one entry per message (the window in which Figure 8 bugs show). */
  maxSizePerMsg: number;
}

export interface RunResult {
  seed: number;
  plan: Plan;
  hash: string;
  steps: number;
  acked: number;
  ticks: number;
}

export async function runSeed(seed: number, options: RunOptions = {}): Promise<RunResult> {
  const random = new Prng(seed);
  const plan = makePlan(random, options);
  const log = options.verbose ? (options.log ?? ((line: string) => console.log(line))) : undefined;
  log?.(`seed ${seed} plan ${JSON.stringify(plan)}`);
  let cluster: SimCluster | undefined;
  try {
    cluster = await SimCluster.create({ seed, random, log, traceMessages: options.traceMessages, ...plan });
    await safetyPhase(cluster, random, plan);
    await livenessPhase(cluster, options.livenessTicks ?? 2000);
    log?.(`seed ${seed} passed: ${cluster.step} steps, ${cluster.acked.length} acknowledged, hash ${cluster.traceHash()}`);
    return { seed, plan, hash: cluster.traceHash(), steps: cluster.step, acked: cluster.acked.length, ticks: cluster.network.now };
  } catch (e) {
    if (e instanceof SafetyViolation || e instanceof LivenessFailure) throw e;
    const state = cluster ? `\n${cluster.describe()}` : "";
    const crash = new SimCrash(`seed ${seed}: crash (exception) at step ${cluster?.step ?? 0}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}${state}`);
    crash.cause = e;
    throw crash;
  }
}

export function makePlan(random: Prng, options: RunOptions): Plan {
  const steps = options.steps ?? 300;
  const lossy = random.chance(0.6);
  return {
    size: random.chance(0.5) ? 3 : 5,
    steps,
    faults: lossy ? { loss: random.int(0, 20) / 100, duplicate: random.int(0, 10) / 100, maxDelay: random.int(0, 4) } : { ...NO_FAULTS },
    crashWeight: random.int(0, 4),
    partitionWeight: random.int(0, 4),
    membership: random.chance(0.4),
    snapshotThreshold: random.int(8, 40),
    compactionMargin: random.int(0, 8),
    maxSizePerMsg: random.pick([1, 1, 128, 1024]),
  };
}

type Op = (c: SimCluster, r: Prng, plan: Plan) => Promise<void>;

async function safetyPhase(c: SimCluster, r: Prng, plan: Plan): Promise<void> {
  c.network.faults = { ...plan.faults };
  const ops: [number, Op][] = [
    [40, (c, r) => c.tick(r.int(1, 3))],
    [25, proposeSome],
    [plan.crashWeight, crashOne],
    [plan.crashWeight * 2, restartOne],
    [plan.partitionWeight, partitionRandomly],
    [plan.partitionWeight, isolateLeader],
    [plan.partitionWeight + 1, (c) => c.heal()],
    [plan.partitionWeight, slowOne],
    [3, readOne],
    [plan.membership ? 4 : 0, changeMembership],
    [1, transferOne],
    [2, (c, r, p) => changeFaults(c, r, p)],
  ];
  const total = ops.reduce((sum, [w]) => sum + w, 0);
  for (let i = 0; i < plan.steps; i++) {
    let x = r.int(1, total);
    const op = ops.find(([w]) => (x -= w) <= 0);
    if (op) await op[1](c, r, plan);
  }
}

async function livenessPhase(c: SimCluster, bound: number): Promise<void> {
  c.network.faults = { ...NO_FAULTS };
  await c.heal();
  for (const id of c.crashedIds()) await c.restart(id);
  const start = c.network.now;
  while (!converged(c)) {
    if (c.network.now - start > bound) {
      throw new LivenessFailure(`seed ${c.o.seed}: liveness: no convergence within ${bound} ticks of healing (step ${c.step})\n${c.describe()}`);
    }
    await c.tick(1);
  }
  const members = new Set([...c.membership().voters, ...c.membership().learners]);
  const violation = checkExactlyOnce(c.history, c.acked, c.views().filter((v) => members.has(v.id)));
  if (violation) throw new SafetyViolation(`seed ${c.o.seed}: Exactly Once: ${violation} (step ${c.step})\n${c.describe()}`);
}

/** A leader exists; every live member has applied the leader's whole log; no forwarded proposal is in flight. */
export function converged(c: SimCluster): boolean {
  const lead = c.leader();
  if (!lead || c.network.pending("prop") > 0) return false;
  const last = c.node(lead).storage.lastIndex();
  const conf = c.raft(lead).membership();
  for (const id of [...conf.voters, ...conf.learners]) {
    const s = c.nodes.get(id)?.raft?.status();
    if (!s || s.applied !== last || s.commit !== last) return false;
  }
  return true;
}

async function proposeSome(c: SimCluster, r: Prng): Promise<void> {
  const live = c.liveIds();
  if (live.length === 0) return c.tick(1);
  const n = r.int(1, 3);
  for (let i = 0; i < n; i++) {
    const key = `k${r.int(0, 4)}`;
    const id = r.pick(live);
    if (r.chance(0.2)) void c.propose(id, { op: "cas", key, expect: null, value: `v${c.proposed}` });
    else void c.propose(id, { op: "set", key, value: `v${c.proposed}` });
  }
  await c.settle(`propose x${n}`);
}

async function crashOne(c: SimCluster, r: Prng): Promise<void> {
  const live = c.liveIds();
  if (live.length > 0) await c.crash(r.pick(live));
}

async function restartOne(c: SimCluster, r: Prng): Promise<void> {
  const down = c.crashedIds();
  if (down.length > 0) await c.restart(r.pick(down));
}

async function partitionRandomly(c: SimCluster, r: Prng): Promise<void> {
  const ids = r.shuffle(c.ids());
  const cut = r.int(1, ids.length - 1);
  await c.partition([ids.slice(0, cut), ids.slice(cut)]);
}

async function isolateLeader(c: SimCluster): Promise<void> {
  const lead = c.leader();
  if (lead) await c.partition([[lead]]);
}

async function slowOne(c: SimCluster, r: Prng): Promise<void> {
  const lead = c.leader();
  const followers = c.liveIds().filter((id) => id !== lead);
  if (followers.length > 0) await c.slowFollower(r.pick(followers), true);
}

async function readOne(c: SimCluster, r: Prng): Promise<void> {
  const live = c.liveIds();
  if (live.length > 0) void c.readBarrier(r.pick(live));
  await c.settle("read");
}

async function changeMembership(c: SimCluster, r: Prng): Promise<void> {
  const lead = c.leader();
  if (!lead) return c.tick(1);
  const conf = c.raft(lead).membership();
  if (conf.learners.length > 0) {
    const learner = r.pick(conf.learners);
    if (r.chance(0.7)) await c.promote(lead, learner);
    else await c.remove(lead, learner);
  } else if (conf.voters.length > 3 && r.chance(0.5)) {
    await c.remove(lead, r.pick(conf.voters.filter((id) => id !== lead)));
  } else if (c.ids().length < 8) {
    await c.addLearner(lead);
  }
}

async function transferOne(c: SimCluster, r: Prng): Promise<void> {
  const lead = c.leader();
  if (!lead) return c.tick(1);
  const voters = c.raft(lead).membership().voters.filter((id) => id !== lead);
  if (voters.length > 0) await c.transferLeadership(r.pick(voters));
}

async function changeFaults(c: SimCluster, r: Prng, plan: Plan): Promise<void> {
  c.network.faults = r.chance(0.3) ? { ...NO_FAULTS } : { ...plan.faults, maxDelay: r.int(0, 4) };
  await c.settle("faults");
}
