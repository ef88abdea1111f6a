// One Jepsen-style run: a 3-master cluster, the workload, the nemesis for a while; then heal, let the cluster
// settle, and check the history for linearizability.
// Roles: shared by jepsen-main (the command line) and the e2e test.
// Invariants: the cluster is stopped whatever happens (every child process ends); the result is "ok" only when
// the checker says ok, "unknown" when its budget ran out.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkHistory, type CheckResult } from "./checker.js";
import { Cluster, loopbackMasters, type MasterSpec } from "./cluster.js";
import type { Netns } from "./netns.js";
import { Nemesis, type FaultEvent, type FaultKind } from "./nemesis.js";
import { Workload, type WorkloadStats } from "./workload.js";

export interface JepsenOptions {
  durationMs: number;
  masters?: MasterSpec[];
  clients?: number;
  keys?: number;
  /** Stale-prone gets (see WorkloadOptions): a negative control for the checker. */
  serializableReads?: boolean;
  nemesisIntervalMs?: number;
  faultMs?: number;
  checkTimeoutMs?: number;
  cli?: string;
  log?: (line: string) => void;
  /** Keep the data directories and write the history there (for a post-mortem). */
  keep?: boolean;
  /** Masters in these (already set up) namespaces, with partitions among the faults; this process must run in its client namespace. */
  netns?: Netns;
}

export interface JepsenReport {
  stats: WorkloadStats;
  opsPerSecond: number;
  faults: Record<FaultKind, number>;
  events: FaultEvent[];
  errors: Record<string, number>;
  check: CheckResult;
  checkMs: number;
  dir: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runJepsen(o: JepsenOptions): Promise<JepsenReport> {
  const log = o.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), "flotilla-jepsen-"));
  const masters = o.netns?.masters() ?? o.masters ?? loopbackMasters();
  const netns = o.netns;
  const exec = netns ? (name: string) => ["ip", "netns", "exec", netns.masterNs(name)] : undefined;
  const cluster = new Cluster({ masters, dir, cli: o.cli, exec });
  try {
    await cluster.startAll();
    await cluster.heal();
    log(`cluster up: leader ${await cluster.leader()}`);
    const workload = new Workload({ endpoints: cluster.masters.map((m) => m.etcd), clients: o.clients, keys: o.keys, serializableReads: o.serializableReads });
    const nemesis = new Nemesis(cluster, { now: () => workload.now(), intervalMs: o.nemesisIntervalMs, faultMs: o.faultMs, log, netns });
    const began = Date.now();
    workload.begin();
    nemesis.begin();
    await sleep(o.durationMs);
    await nemesis.stop();
    await cluster.heal();
    // A quiet tail: operations against a healed cluster pin down the final state of every key.
    await sleep(Math.min(3000, o.durationMs / 5));
    await workload.end();
    const seconds = (Date.now() - began) / 1000;
    log(`workload done: ${workload.history.length} operations recorded in ${seconds.toFixed(1)}s; checking`);
    const checkStarted = Date.now();
    const check = checkHistory(workload.history, { timeoutMs: o.checkTimeoutMs ?? 300_000 });
    const checkMs = Date.now() - checkStarted;
    if (o.keep) writeFileSync(join(dir, "history.json"), JSON.stringify(workload.history, (_, v) => (v === Infinity ? "Infinity" : v)));
    const stats = workload.stats();
    return { stats, opsPerSecond: stats.ops / seconds, faults: nemesis.counts(), events: nemesis.events, errors: Object.fromEntries(workload.errors), check, checkMs, dir };
  } finally {
    netns?.heal();
    await cluster.stop();
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  }
}

/** A human-readable summary of a run (the violation's explanation included). */
export function summarize(r: JepsenReport): string {
  const s = r.stats;
  const verdict = r.check.ok === true ? "linearizable" : r.check.ok === false ? `NOT LINEARIZABLE (key ${r.check.key})` : `UNKNOWN (key ${r.check.key})`;
  const lines = [
    `operations: ${s.ops} (${r.opsPerSecond.toFixed(1)}/s): ok ${s.ok}, failed ${s.failed}, ambiguous ${s.ambiguous}, dropped reads ${s.droppedReads}`,
    `faults: ${Object.entries(r.faults).map(([k, n]) => `${k} ${n}`).join(", ")}`,
    `errors: ${Object.entries(r.errors).map(([k, n]) => `${k} ${n}`).join(", ") || "none"}`,
    `check: ${verdict} in ${r.checkMs} ms`,
  ];
  if (r.check.ok !== true) lines.push(r.check.explanation);
  if (r.check.ok !== true) lines.push(`faults (ms on the history's clock): ${r.events.map((e) => `${e.kind} ${e.target} ${(e.start / 1e6).toFixed(0)}..${e.end === undefined ? "?" : (e.end / 1e6).toFixed(0)}`).join("; ")}`);
  return lines.join("\n");
}
