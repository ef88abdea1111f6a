// The store through etcd's own v3 gRPC API and client library: three Flotilla masters (Raft-replicated MVCC store,
// `--etcd-listen`) against a three-member etcd (Debian's etcd-server, /usr/bin/etcd), on the same loopback layout,
// one system after the other (never at the same time), both durable, driven by the same client program: the
// `etcd3` npm package over gRPC.
//
//   npm run build && node dist/bench/kv.js [--seconds S] [--warmup S] [--levels 1,16,256] [--read-seconds S]
//        [--readers N] [--failovers N] [--value-bytes N] [--connections N] [--only flotilla|etcd] [--etcd BIN]
//        [--etcd-heartbeat-ms N --etcd-election-ms N]   (etcd's defaults, 100 and 1000, unless given) [--keep-logs]
//
// Per system: start three members with fresh data directories in a temp dir and wait for a leader; for each
// concurrency level, N loops run "put one 256-byte value, wait for the reply" against the leader (each member has
// `--connections` etcd3 clients pinned to it, each on its own HTTP/2 connection; loop i uses client i mod that; on
// an error a loop looks the leader up again and retries; only acknowledged writes count; latency runs from a
// write's first attempt to its acknowledgement) for a warm-up and then S seconds; then linearizable gets at 16
// loops; then failover: one writer loop sends puts, alternately, to the two members that are not the leader;
// kill -9 the leader; time until a survivor's status names a new leader and until the first put sent after the kill
// is acknowledged; restart the killed member and wait until it has applied what was committed; N times. Every
// phase has a deadline; every process is killed and the temp dir removed on exit, on errors and on Ctrl-C.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { Etcd3, type IOptions } from "etcd3";
import { deadline, median, now, percentile, sleep, until } from "./lib/timing.js";

// ---------------------------------------------------------------------------------------------------- options

interface Options {
  seconds: number;
  warmup: number;
  levels: number[];
  readSeconds: number;
  readers: number;
  failovers: number;
  valueBytes: number;
  connections: number;
  failoverDeadlineMs: number;
  only?: "flotilla" | "etcd";
  etcd: string;
  etcdHeartbeatMs: number;
  etcdElectionMs: number;
  keepLogs: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      levels: { type: "string", default: "1,16,256" },
      "read-seconds": { type: "string" },
      readers: { type: "string", default: "16" },
      failovers: { type: "string", default: "3" },
      "value-bytes": { type: "string", default: "256" },
      connections: { type: "string", default: "4" },
      "failover-deadline-ms": { type: "string", default: "250" },
      only: { type: "string" },
      etcd: { type: "string", default: "/usr/bin/etcd" },
      "etcd-heartbeat-ms": { type: "string", default: "100" },
      "etcd-election-ms": { type: "string", default: "1000" },
      "keep-logs": { type: "boolean", default: false },
    },
  });
  const num = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a number: ${v}`);
    return n;
  };
  if (values.only !== undefined && values.only !== "flotilla" && values.only !== "etcd") throw new Error("--only: flotilla or etcd");
  const seconds = num("seconds", values.seconds);
  return {
    seconds,
    warmup: num("warmup", values.warmup),
    levels: String(values.levels).split(",").map((l) => num("levels", l)),
    readSeconds: values["read-seconds"] === undefined ? seconds : num("read-seconds", values["read-seconds"]),
    readers: num("readers", values.readers),
    failovers: num("failovers", values.failovers),
    valueBytes: num("value-bytes", values["value-bytes"]),
    connections: Math.max(1, num("connections", values.connections)),
    failoverDeadlineMs: num("failover-deadline-ms", values["failover-deadline-ms"]),
    only: values.only as Options["only"],
    etcd: String(values.etcd),
    etcdHeartbeatMs: num("etcd-heartbeat-ms", values["etcd-heartbeat-ms"]),
    etcdElectionMs: num("etcd-election-ms", values["etcd-election-ms"]),
    keepLogs: Boolean(values["keep-logs"]),
  };
}

// ------------------------------------------------------------------------------------------------ small tools


// ----------------------------------------------------------------------------------------------- etcd3 client

type Policy = NonNullable<NonNullable<IOptions["faultHandling"]>["global"]>;

/**
 * A pass-through fault policy. etcd3's defaults retry recoverable errors three times and open a per-host circuit
 * breaker for 5 s after three failures; that would hide errors from the benchmark and stall failover on a breaker
 * rather than on the system. Both systems get this same client: every error reaches the loop, which retries itself.
 */
const direct = {
  execute: <T>(fn: (context: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T) => Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 })),
} as unknown as Policy;

/** One etcd3 client pinned to one member, on its own HTTP/2 connection (a local subchannel pool). */
function pinnedClient(endpoint: string, callTimeoutMs: number): Etcd3 {
  if (!/^127\.0\.\d+\.\d+:\d+$/.test(endpoint)) throw new Error(`refusing to dial ${endpoint}: loopback 127.0.x.x only`);
  return new Etcd3({
    hosts: [`http://${endpoint}`],
    dialTimeout: 1000,
    grpcOptions: { "grpc.use_local_subchannel_pool": 1, "grpc.max_reconnect_backoff_ms": 200, "grpc.initial_reconnect_backoff_ms": 50 },
    faultHandling: { host: () => direct, global: direct },
    defaultCallOptions: () => ({ deadline: Date.now() + callTimeoutMs }),
  });
}

// ------------------------------------------------------------------------------------------------- processes

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").slice(-2000);
  } catch {
    return "";
  }
}

/** Spawns a member with stdout and stderr appended to `log`; resolves when `ready` appears in either (if given). */
function spawnLogged(bin: string, args: string[], log: string): { child: ChildProcess; output: () => string } {
  const fd = openSync(log, "a");
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let recent = "";
  const onData = (d: Buffer) => {
    writeSync(fd, d);
    recent = (recent + String(d)).slice(-20_000);
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  child.once("exit", () => {
    children.delete(child);
    closeSync(fd);
  });
  return { child, output: () => recent };
}

interface Member {
  name: string;
  host: string;
  /** host:port of its etcd v3 gRPC API. */
  endpoint: string;
  proc?: ChildProcess;
  /** False from the moment the benchmark kills it until it has been started again. */
  alive: boolean;
  /** etcd member id (uint64 as a decimal string), learned from its own status. */
  id?: string;
  /** `--connections` clients for the load, and one for status calls. */
  clients: Etcd3[];
  statusClient?: Etcd3;
  /** The failover writer's client, with a short per-call deadline (`--failover-deadline-ms`). */
  failoverClient?: Etcd3;
}

interface System {
  name: string;
  version: string;
  layout: string;
  members: Member[];
  start(m: Member): Promise<void>;
}

// ------------------------------------------------------------------------------------------------ Flotilla

const CLI = join(process.cwd(), "dist", "src", "cli", "main.js");
const FLOTILLA_API = 18000;
const FLOTILLA_RAFT = 18001;
const FLOTILLA_ETCD = 18002;

function flotillaSystem(dir: string): System {
  const members: Member[] = [1, 2, 3].map((i) => ({ name: `m${i}`, host: `127.0.1.${20 + i}`, endpoint: `127.0.1.${20 + i}:${FLOTILLA_ETCD}`, alive: false, clients: [] }));
  const initial = members.map((m) => `${m.name}=${m.host}:${FLOTILLA_RAFT}`).join(",");
  const token = `admin.bench-kv-${process.pid}`;
  for (const m of members) {
    mkdirSync(join(dir, "flotilla", m.name), { recursive: true });
    writeFileSync(join(dir, "flotilla", m.name, "admin.token"), `${token}\n`, { mode: 0o600 });
  }
  const start = (m: Member) =>
    new Promise<void>((resolve, reject) => {
      const log = join(dir, "flotilla", `${m.name}.log`);
      const args = [CLI, "master", "--name", m.name, "--listen", `${m.host}:${FLOTILLA_API}`, "--data", join(dir, "flotilla", m.name), "--initial-cluster", initial, "--etcd-listen", m.endpoint];
      const { child, output } = spawnLogged(process.execPath, args, log);
      m.proc = child;
      const check = setInterval(() => {
        if (/master listening on/.test(output())) {
          clearInterval(check);
          resolve();
        }
      }, 20);
      child.once("exit", (code, signal) => {
        clearInterval(check);
        m.alive = false;
        reject(new Error(`flotilla ${m.name} exited (${code ?? signal}): ${tail(log)}`));
      });
    });
  const pkg = JSON.parse(readFileSync(join(process.cwd(), "package.json"), "utf8")) as { version: string };
  return {
    name: "flotilla",
    version: `flotilla ${pkg.version} (\`flotilla master --initial-cluster ... --etcd-listen ...\`; Raft tick 50 ms, election 10 ticks, heartbeat 1 tick)`,
    layout: `127.0.1.21-23 (etcd API ${FLOTILLA_ETCD}, Raft ${FLOTILLA_RAFT}, Flotilla API ${FLOTILLA_API})`,
    members,
    start,
  };
}

// ---------------------------------------------------------------------------------------------------- etcd

const ETCD_CLIENT = 2379;
const ETCD_PEER = 2380;

function etcdVersion(bin: string): string {
  return (spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout ?? "").split("\n")[0]?.replace("etcd Version: ", "") ?? "?";
}

function etcdSystem(dir: string, bin: string, heartbeatMs: number, electionMs: number): System {
  const members: Member[] = [1, 2, 3].map((i) => ({ name: `e${i}`, host: `127.0.1.${30 + i}`, endpoint: `127.0.1.${30 + i}:${ETCD_CLIENT}`, alive: false, clients: [] }));
  const cluster = members.map((m) => `${m.name}=http://${m.host}:${ETCD_PEER}`).join(",");
  const start = (m: Member) =>
    new Promise<void>((resolve, reject) => {
      mkdirSync(join(dir, "etcd"), { recursive: true });
      const log = join(dir, "etcd", `${m.name}.log`);
      const args = [
        "--name", m.name,
        "--data-dir", join(dir, "etcd", `${m.name}.etcd`),
        "--listen-client-urls", `http://${m.endpoint}`,
        "--advertise-client-urls", `http://${m.endpoint}`,
        "--listen-peer-urls", `http://${m.host}:${ETCD_PEER}`,
        "--initial-advertise-peer-urls", `http://${m.host}:${ETCD_PEER}`,
        "--initial-cluster", cluster,
        "--initial-cluster-token", "flotilla-bench-kv",
        "--initial-cluster-state", "new",
        "--heartbeat-interval", String(heartbeatMs),
        "--election-timeout", String(electionMs),
        "--logger", "zap",
        "--log-outputs", "stderr",
      ];
      const { child } = spawnLogged(bin, args, log);
      m.proc = child;
      // etcd has no "ready" line that means the same as Flotilla's; it is started once its process is up, and
      // `startMember` then waits for its status to answer, as it does for Flotilla.
      const timer = setTimeout(resolve, 50);
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        m.alive = false;
        reject(new Error(`etcd ${m.name} exited (${code ?? signal}): ${tail(log)}`));
      });
    });
  return {
    name: "etcd",
    version: etcdVersion(bin),
    layout: `127.0.1.31-33 (client ${ETCD_CLIENT}, peer ${ETCD_PEER}); heartbeat ${heartbeatMs} ms, election ${electionMs} ms${heartbeatMs === 100 && electionMs === 1000 ? " (its defaults)" : ""}, otherwise default settings (fsync on)`,
    members,
    start,
  };
}

// ------------------------------------------------------------------------------------------------- members

interface Status {
  id: string;
  leader?: string;
  raftIndex: number;
  applied: number;
}

async function status(m: Member): Promise<Status> {
  const s = await m.statusClient!.maintenance.status();
  m.id = String(s.header.member_id);
  const leader = String(s.leader);
  return { id: m.id, leader: leader === "0" ? undefined : leader, raftIndex: Number(s.raftIndex), applied: Number(s.raftAppliedIndex ?? s.raftIndex) };
}

function closeClients(m: Member): void {
  for (const c of m.clients) c.close();
  m.statusClient?.close();
  m.failoverClient?.close();
  m.failoverClient = undefined;
  m.clients = [];
  m.statusClient = undefined;
}

/** Starts (or restarts) a member, gives it fresh clients and waits until its status answers. */
async function startMember(sys: System, m: Member, connections: number, failoverDeadlineMs: number): Promise<void> {
  closeClients(m);
  await sys.start(m);
  m.statusClient = pinnedClient(m.endpoint, 1000);
  m.clients = Array.from({ length: connections }, () => pinnedClient(m.endpoint, 5000));
  m.failoverClient = pinnedClient(m.endpoint, failoverDeadlineMs);
  await until(`${sys.name} ${m.name} to answer Status`, 30_000, () => status(m));
  m.alive = true;
}

/** The live member that is the leader by a live member's own account (its id equals the leader it reports). */
async function findLeader(sys: System): Promise<Member | undefined> {
  const live = sys.members.filter((m) => m.alive);
  const statuses = await Promise.all(live.map((m) => status(m).catch(() => undefined)));
  return live.find((_, i) => statuses[i] !== undefined && statuses[i]!.leader === statuses[i]!.id);
}

/** Looks the leader up for many loops at once: one lookup in flight, every 10 ms until found. */
class LeaderCache {
  leader?: Member;
  private finding?: Promise<Member>;
  constructor(private sys: System) {}
  async get(): Promise<Member> {
    return this.leader ?? this.refind();
  }
  invalidate(m: Member): void {
    if (this.leader === m) this.leader = undefined;
  }
  refind(): Promise<Member> {
    this.finding ??= until(`${this.sys.name}: a leader`, 30_000, () => findLeader(this.sys), 10)
      .then((m) => (this.leader = m))
      .finally(() => (this.finding = undefined));
    return this.finding;
  }
}

// ------------------------------------------------------------------------------------------------- phases

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN if it is gone. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

interface LoadResult {
  /** CPU ms per acknowledged request in the measured window: the leader, all three members, the client. */
  cpuPerOp?: { leader: number; members: number; client: number };
  concurrency: number;
  ops: number;
  perSecond: number;
  p50: number;
  p99: number;
  errors: number;
  firstError?: string;
}

/** `concurrency` loops run `op` against the leader for warm-up + measure; counts what completes in the window. */
async function load(sys: System, concurrency: number, warmupS: number, measureS: number, op: (client: Etcd3, loop: number, seq: number) => Promise<unknown>): Promise<LoadResult> {
  const cache = new LeaderCache(sys);
  await cache.refind();
  const windowStart = now() + warmupS * 1000;
  const windowEnd = windowStart + measureS * 1000;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let stop = false;
  const loop = async (i: number) => {
    for (let seq = 0; !stop; seq++) {
      const t0 = now();
      let done = false;
      while (!stop && !done) {
        const m = await cache.get();
        try {
          await op(m.clients[i % m.clients.length], i, seq);
          done = true;
        } catch (e) {
          errors++;
          firstError ??= e instanceof Error ? e.message : String(e);
          cache.invalidate(m);
          await sleep(5);
        }
      }
      const t1 = now();
      if (done && t1 >= windowStart && t1 <= windowEnd) latencies.push(t1 - t0);
    }
  };
  const loops = Array.from({ length: concurrency }, (_, i) => loop(i));
  await sleep(windowStart - now());
  const leader = cache.leader;
  const sample = () => ({ leader: cpuSeconds(leader?.proc?.pid), members: sys.members.reduce((sum, m) => sum + cpuSeconds(m.proc?.pid), 0), client: process.cpuUsage() });
  const before = sample();
  await sleep(windowEnd - now());
  const after = sample();
  stop = true;
  await deadline(`${sys.name}: in-flight requests to finish`, 15_000, Promise.all(loops));
  latencies.sort((a, b) => a - b);
  const perOp = (seconds: number) => (seconds * 1000) / Math.max(1, latencies.length);
  const cpuPerOp = {
    leader: perOp(after.leader - before.leader),
    members: perOp(after.members - before.members),
    client: perOp((after.client.user + after.client.system - before.client.user - before.client.system) / 1e6),
  };
  return { cpuPerOp, concurrency, ops: latencies.length, perSecond: latencies.length / measureS, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors, firstError };
}

interface FailoverResult {
  killed: string;
  newLeader: string;
  toLeaderMs: number;
  toWriteMs: number;
  catchUpMs: number;
  failedPuts: number;
}

/**
 * One writer loop sends puts, alternately, to the two members that are not the leader (so the kill never breaks
 * the connection it writes on); kill -9 the leader; time a new leader in a survivor's status and the first put
 * sent after the kill that is acknowledged; restart the killed member and wait until it has caught up.
 */
async function failover(sys: System, value: Buffer, round: number, options: Options): Promise<FailoverResult> {
  const old = await new LeaderCache(sys).refind();
  const survivors = sys.members.filter((m) => m !== old);
  let stop = false;
  let tKill = Infinity;
  let tWrite: number | undefined;
  let acked = 0;
  let failedPuts = 0;
  const writer = (async () => {
    for (let seq = 0; !stop; seq++) {
      const m = survivors[seq % survivors.length];
      const sent = now();
      try {
        await m.failoverClient!.put(`failover/${round}/${seq % 100}`).value(value);
        acked++;
        if (sent > tKill && tWrite === undefined) tWrite = now();
      } catch {
        failedPuts++;
        await sleep(5);
      }
    }
  })();
  try {
    await until(`${sys.name}: writes before the kill`, 10_000, async () => (acked >= 20 ? true : undefined), 10);
    await sleep(500);
    const proc = old.proc!;
    const exited = new Promise((r) => proc.once("exit", r));
    tKill = now();
    old.alive = false;
    proc.kill("SIGKILL");
    const [newLeaderId, tLeader] = await until(`${sys.name}: a new leader after killing ${old.name}`, 30_000, async () => {
      const statuses = await Promise.all(survivors.map((m) => status(m).catch(() => undefined)));
      const seen = statuses.find((s) => s?.leader !== undefined && s.leader !== old.id);
      return seen ? ([seen.leader!, now()] as const) : undefined;
    }, 5);
    await until(`${sys.name}: the first write after killing ${old.name}`, 30_000, async () => (tWrite !== undefined ? true : undefined), 5);
    stop = true;
    await deadline(`${sys.name}: the failover writer to stop`, 10_000, writer);
    await deadline(`${sys.name}: ${old.name} to exit`, 5_000, exited);
    const newLeader = sys.members.find((m) => m.id === newLeaderId)?.name ?? `id:${newLeaderId}`;
    // Bring it back and wait until it has applied what the leader had committed when it came back.
    const tRestart = now();
    await deadline(`${sys.name}: restart ${old.name}`, 40_000, startMember(sys, old, options.connections, options.failoverDeadlineMs));
    const leader = await new LeaderCache(sys).refind();
    const target = (await status(leader)).raftIndex;
    await until(`${sys.name}: ${old.name} to catch up to ${target}`, 60_000, async () => ((await status(old)).applied >= target ? true : undefined), 20);
    return { killed: old.name, newLeader, toLeaderMs: tLeader - tKill, toWriteMs: tWrite! - tKill, catchUpMs: now() - tRestart, failedPuts };
  } finally {
    stop = true;
  }
}

interface SystemResult {
  system: System;
  writes: LoadResult[];
  reads: LoadResult;
  failovers: FailoverResult[];
}

async function runSystem(sys: System, options: Options, log: (line: string) => void): Promise<SystemResult> {
  const value = Buffer.alloc(options.valueBytes, "v");
  log(`${sys.name}: starting ${sys.members.map((m) => `${m.name}@${m.endpoint}`).join(", ")}`);
  await deadline(`${sys.name}: start`, 60_000, Promise.all(sys.members.map((m) => startMember(sys, m, options.connections, options.failoverDeadlineMs))));
  const first = await new LeaderCache(sys).refind();
  log(`${sys.name}: leader ${first.name}`);
  const writes: LoadResult[] = [];
  for (const c of options.levels) {
    const r = await deadline(`${sys.name}: ${c} writers`, (options.warmup + options.seconds) * 1000 + 60_000, load(sys, c, options.warmup, options.seconds, async (client, i, seq) => {
      await client.put(`bench/${i}/${seq % 64}`).value(value);
    }));
    log(`${sys.name}: ${c} writers: ${r.perSecond.toFixed(0)} puts/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.errors} errors${r.firstError ? ` (first: ${r.firstError})` : ""}; CPU ms/put leader ${r.cpuPerOp?.leader.toFixed(3)}, members ${r.cpuPerOp?.members.toFixed(3)}, client ${r.cpuPerOp?.client.toFixed(3)}`);
    writes.push(r);
  }
  const reads = await deadline(`${sys.name}: reads`, (options.warmup + options.readSeconds) * 1000 + 60_000, load(sys, options.readers, options.warmup, options.readSeconds, async (client, i) => {
    const got = await client.get(`bench/${i % 16}/0`).buffer();
    if (got === null) throw new Error(`bench/${i % 16}/0 is missing`);
  }));
  log(`${sys.name}: ${options.readers} readers: ${reads.perSecond.toFixed(0)} gets/s, p50 ${reads.p50.toFixed(2)} ms, p99 ${reads.p99.toFixed(2)} ms, ${reads.errors} errors${reads.firstError ? ` (first: ${reads.firstError})` : ""}`);
  const failovers: FailoverResult[] = [];
  for (let i = 0; i < options.failovers; i++) {
    const f = await deadline(`${sys.name}: failover ${i + 1}`, 180_000, failover(sys, value, i, options));
    log(`${sys.name}: failover ${i + 1}: killed ${f.killed}, new leader ${f.newLeader} after ${f.toLeaderMs.toFixed(0)} ms, first write after ${f.toWriteMs.toFixed(0)} ms (${f.failedPuts} failed puts); ${f.killed} caught up in ${f.catchUpMs.toFixed(0)} ms`);
    failovers.push(f);
    await sleep(1000);
  }
  return { system: sys, writes, reads, failovers };
}

async function stopSystem(sys: System): Promise<void> {
  const exits: Promise<unknown>[] = [];
  for (const m of sys.members) {
    closeClients(m);
    const p = m.proc;
    m.alive = false;
    if (p && p.exitCode === null && p.signalCode === null) {
      exits.push(new Promise((r) => p.once("exit", r)));
      p.kill("SIGKILL");
    }
  }
  await deadline(`${sys.name}: stop`, 10_000, Promise.all(exits));
}

// ------------------------------------------------------------------------------------------------- report

function machine(etcd: string): string {
  const cpu = cpus();
  const load = loadavg().map((l) => l.toFixed(2)).join(" ");
  return `${cpu.length} cores (${cpu[0]?.model.trim() ?? "unknown"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, Node ${process.version}, etcd ${etcd}; load average ${load} at the start`;
}

function report(results: SystemResult[], options: Options, header: string[]): string {
  const lines = [...header, ""];
  const fmt = (n: number | undefined, d = 1) => (n !== undefined && Number.isFinite(n) ? n.toFixed(d) : "-");
  const names = results.map((r) => r.system.name);
  const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const rule = (left: number, perSystem: number) => `|${"---|".repeat(left)}${"---:|".repeat(perSystem * results.length)}`;

  lines.push(`Puts of ${options.valueBytes}-byte values to the leader, ${options.seconds} s per level after ${options.warmup} s of warm-up:`, "");
  lines.push(row(["concurrent loops", ...names.flatMap((n) => [`${n} puts/s`, `${n} p50 ms`, `${n} p99 ms`, `${n} errors`])]), rule(1, 4));
  for (const c of options.levels) {
    lines.push(row([String(c), ...results.flatMap((r) => {
      const w = r.writes.find((x) => x.concurrency === c);
      return [fmt(w?.perSecond, 0), fmt(w?.p50, 2), fmt(w?.p99, 2), String(w?.errors ?? "-")];
    })]));
  }
  lines.push("", `Linearizable gets from the leader, ${options.readers} concurrent loops, ${options.readSeconds} s after ${options.warmup} s of warm-up:`, "");
  lines.push(row(["concurrent loops", ...names.flatMap((n) => [`${n} gets/s`, `${n} p50 ms`, `${n} p99 ms`, `${n} errors`])]), rule(1, 4));
  lines.push(row([String(options.readers), ...results.flatMap((r) => [fmt(r.reads.perSecond, 0), fmt(r.reads.p50, 2), fmt(r.reads.p99, 2), String(r.reads.errors)])]));
  lines.push("", "CPU per acknowledged request in the measured windows, ms (user + system; the leader, all three members, the client process):", "");
  lines.push(row(["phase", ...names.flatMap((n) => [`${n} leader`, `${n} members`, `${n} client`])]), rule(1, 3));
  const cpuCells = (l?: LoadResult) => [fmt(l?.cpuPerOp?.leader, 3), fmt(l?.cpuPerOp?.members, 3), fmt(l?.cpuPerOp?.client, 3)];
  for (const c of options.levels) lines.push(row([`puts, ${c} loops`, ...results.flatMap((r) => cpuCells(r.writes.find((x) => x.concurrency === c)))]));
  lines.push(row([`gets, ${options.readers} loops`, ...results.flatMap((r) => cpuCells(r.reads))]));
  lines.push("", `Failover: \`kill -9\` of the leader under one writer loop (puts to the two other members, per-call deadline ${options.failoverDeadlineMs} ms), ms from the kill:`, "");
  lines.push(row(["round", ...names.flatMap((n) => [`${n} killed → new`, `${n} to new leader`, `${n} to first write`, `${n} caught up after restart`])]), `|---|${results.map(() => "---|---:|---:|---:|").join("")}`);
  const rounds = Math.max(0, ...results.map((r) => r.failovers.length));
  for (let i = 0; i < rounds; i++) {
    lines.push(row([String(i + 1), ...results.flatMap((r) => {
      const f = r.failovers[i];
      return f ? [`${f.killed} → ${f.newLeader}`, fmt(f.toLeaderMs, 0), fmt(f.toWriteMs, 0), fmt(f.catchUpMs, 0)] : ["-", "-", "-", "-"];
    })]));
  }
  if (rounds > 0) {
    lines.push(row(["**median**", ...results.flatMap((r) => ["", fmt(median(r.failovers.map((f) => f.toLeaderMs)), 0), `**${fmt(median(r.failovers.map((f) => f.toWriteMs)), 0)}**`, fmt(median(r.failovers.map((f) => f.catchUpMs)), 0)])]));
  }
  return lines.join("\n");
}

// --------------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), "flotilla-bench-kv-"));
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    killAll();
    if (options.keepLogs) process.stderr.write(`logs kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
  process.on("exit", cleanup);
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping\n`);
    cleanup();
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  const flotilla = flotillaSystem(dir);
  const etcd = etcdSystem(dir, options.etcd, options.etcdHeartbeatMs, options.etcdElectionMs);
  const script = relative(process.cwd(), process.argv[1] ?? "") || process.argv[1];
  const header = [
    `- **Command:** \`node ${script} ${process.argv.slice(2).join(" ")}\``.replace(/ `$/, "`"),
    `- **Date:** ${new Date().toISOString().replace("T", " ").slice(0, 16)} UTC`,
    `- **Machine:** ${machine(etcd.version)}`,
    `- **Systems:** ${flotilla.name}: ${flotilla.version}, on ${flotilla.layout}; etcd ${etcd.version} on ${etcd.layout}. Fresh data directories in the OS temp dir; one system after the other.`,
    `- **Client:** the \`etcd3\` npm package (gRPC), identical for both: ${options.connections} clients pinned to each member, each on its own HTTP/2 connection; loop i uses client i mod ${options.connections} of the leader; per-call deadline 5 s; etcd3's retry and circuit-breaker policies replaced by a pass-through, so every error reaches the loop, which looks the leader up again and retries (only acknowledged requests count; latency from first attempt to acknowledgement).`,
  ];
  log(header.join("\n"));
  const results: SystemResult[] = [];
  for (const sys of [flotilla, etcd]) {
    if (options.only && options.only !== sys.name) continue;
    try {
      results.push(await runSystem(sys, options, log));
    } finally {
      await stopSystem(sys).catch((e: unknown) => log(String(e)));
    }
  }
  process.stdout.write(report(results, options, header) + "\n");
}

main()
  .then(() => process.exit(0))
  .catch((e: unknown) => {
    process.stderr.write(`bench/kv: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
