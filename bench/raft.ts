// Raft: committed proposals through three kv-node processes (src/raft/tools/kv-node.ts: durable file storage with
// group-commit fdatasync, gRPC transport) on loopback, next to the peer measured in the same run on the same
// layout: a three-member etcd (Debian's etcd-server, /usr/bin/etcd) driven through its v3 JSON gateway with the
// same HTTP client code. The two systems run one after the other, never at the same time.
//
//   npm run build && node dist/bench/raft.js [--seconds S] [--warmup S] [--levels 1,16,256] [--read-seconds S]
//        [--readers N] [--failovers N] [--value-bytes N] [--only raft|etcd] [--etcd BIN] [--keep-logs]
//        [--etcd-heartbeat-ms N --etcd-election-ms N]   (etcd's defaults, 100 and 1000, unless given)
//
// Per system: start three members with fresh data directories in a temp dir and wait for a leader; for each
// concurrency level, N proposers loop "send one write of a 256-byte value to the leader, wait for the
// acknowledgement" (on an error or a 503 they look the leader up again and retry; only acknowledged writes count;
// a write's latency runs from its first attempt to its acknowledgement) for a warm-up and then S seconds; then
// linearizable reads at 16 concurrent readers; then failover: kill -9 the leader while one proposer writes, time
// until a surviving member's status names a new leader and until the first write sent after the kill is
// acknowledged, restart the killed member and wait for it to catch up, N times. Every phase has a deadline;
// every process is killed and the temp dir removed on exit, on errors and on Ctrl-C.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
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
  only?: "raft" | "etcd";
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
      "read-seconds": { type: "string", default: "5" },
      readers: { type: "string", default: "16" },
      failovers: { type: "string", default: "3" },
      "value-bytes": { type: "string", default: "256" },
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
  if (values.only !== undefined && values.only !== "raft" && values.only !== "etcd") throw new Error("--only: raft or etcd");
  return {
    seconds: num("seconds", values.seconds),
    warmup: num("warmup", values.warmup),
    levels: String(values.levels).split(",").map((l) => num("levels", l)),
    readSeconds: num("read-seconds", values["read-seconds"]),
    readers: num("readers", values.readers),
    failovers: num("failovers", values.failovers),
    valueBytes: num("value-bytes", values["value-bytes"]),
    only: values.only as Options["only"],
    etcd: String(values.etcd),
    etcdHeartbeatMs: num("etcd-heartbeat-ms", values["etcd-heartbeat-ms"]),
    etcdElectionMs: num("etcd-election-ms", values["etcd-election-ms"]),
    keepLogs: Boolean(values["keep-logs"]),
  };
}

// ------------------------------------------------------------------------------------------------ small tools


// ---------------------------------------------------------------------------------------------- HTTP client

/** One keep-alive agent for everything; both systems get the same client code. */
const newAgent = () => new Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 512 });
let agent = newAgent();

interface HttpReply {
  status: number;
  body: string;
}

function http(method: "GET" | "POST", host: string, port: number, path: string, body?: string, timeoutMs = 5000): Promise<HttpReply> {
  if (!/^127\.0\.0\.\d+$/.test(host)) throw new Error(`refusing to dial ${host}: loopback 127.0.0.x only`);
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(body);
    const req = request(
      {
        host,
        port,
        path,
        method,
        agent,
        headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") });
        });
        res.on("error", (e) => {
          clearTimeout(timer);
          reject(e);
        });
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${host}:${port}${path}`)), timeoutMs);
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(payload);
  });
}

async function httpJson<T>(method: "GET" | "POST", host: string, port: number, path: string, body?: string, timeoutMs?: number): Promise<T> {
  const reply = await http(method, host, port, path, body, timeoutMs);
  if (reply.status !== 200) throw new Error(`${method} ${path} on ${host}: ${reply.status} ${reply.body.slice(0, 200)}`);
  return JSON.parse(reply.body) as T;
}

// ------------------------------------------------------------------------------------------------- processes

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

interface Member {
  name: string;
  host: string;
  proc?: ChildProcess;
  /** False from the moment the benchmark kills it until it has been started again. */
  alive: boolean;
}

interface MemberStatus {
  /** This member believes it is the leader. */
  isLeader: boolean;
  /** The leader this member knows of (a member name), if any. */
  leader?: string;
  /** Applied (or last) log index on this member, to see a restarted member catch up. */
  index: number;
}

interface System {
  name: string;
  version: string;
  members: Member[];
  startAll(): Promise<void>;
  start(m: Member): Promise<void>;
  status(m: Member, timeoutMs?: number): Promise<MemberStatus>;
  /** Resolves on an acknowledged write; throws on any error or non-200 reply. */
  put(m: Member, key: string, value: string, id: string): Promise<void>;
  read(m: Member, key: string): Promise<void>;
  description: string;
}

function spawnLogged(bin: string, args: string[], log: string): ChildProcess {
  const fd = openSync(log, "a");
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", fd] });
  closeSync(fd);
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").slice(-2000);
  } catch {
    return "";
  }
}

// ----------------------------------------------------------------------------------------------- our Raft

const KV_NODE = join(process.cwd(), "dist", "src", "raft", "tools", "kv-node.js");
const RAFT_PORT = 17201;
const RAFT_HTTP = 18201;

interface KvStatus {
  role: string;
  lead: string;
  term: number;
  commit: number;
  applied: number;
}

function raftSystem(dir: string): System {
  const members: Member[] = [1, 2, 3].map((i) => ({ name: `n${i}`, host: `127.0.0.${30 + i}`, alive: false }));
  const peers = members.map((m) => `${m.name}=${m.host}:${RAFT_PORT}`).join(",");
  const start = (m: Member) =>
    new Promise<void>((resolve, reject) => {
      mkdirSync(join(dir, "raft", m.name), { recursive: true });
      const log = join(dir, "raft", `${m.name}.log`);
      const args = [KV_NODE, "--id", m.name, "--raft", `${m.host}:${RAFT_PORT}`, "--http", `${m.host}:${RAFT_HTTP}`, "--peers", peers, "--data", join(dir, "raft", m.name, "data")];
      const child = spawnLogged(process.execPath, args, log);
      m.proc = child;
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += String(d);
        if (out.includes(`kv-node ${m.name} ready`)) {
          m.alive = true;
          resolve();
        }
        if (out.length > 10_000) out = out.slice(-1000);
      });
      child.once("exit", (code, signal) => {
        m.alive = false;
        reject(new Error(`kv-node ${m.name} exited (${code ?? signal}): ${tail(log)}`));
      });
    });
  return {
    name: "flotilla-raft",
    version: "kv-node (src/raft), tick 50 ms, election 10 ticks, heartbeat 1 tick",
    description: "kv-node, HTTP+JSON",
    members,
    start,
    startAll: async () => {
      await Promise.all(members.map(start));
    },
    status: async (m, timeoutMs = 1000) => {
      const s = await httpJson<KvStatus>("GET", m.host, RAFT_HTTP, "/status", undefined, timeoutMs);
      return { isLeader: s.role === "leader", leader: s.lead || undefined, index: s.applied };
    },
    put: async (m, key, value, id) => {
      const reply = await http("POST", m.host, RAFT_HTTP, "/propose", JSON.stringify({ op: "set", key, value, id }));
      if (reply.status !== 200) throw new Error(`propose: ${reply.status} ${reply.body.slice(0, 200)}`);
    },
    read: async (m, key) => {
      const reply = await http("GET", m.host, RAFT_HTTP, `/read?key=${encodeURIComponent(key)}`);
      if (reply.status !== 200) throw new Error(`read: ${reply.status} ${reply.body.slice(0, 200)}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------------- etcd

const ETCD_CLIENT = 2379;
const ETCD_PEER = 2380;

interface EtcdStatus {
  header: { member_id: string };
  leader: string;
  raftIndex: string;
  raftAppliedIndex?: string;
  version: string;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

function etcdSystem(dir: string, bin: string, heartbeatMs: number, electionMs: number): System {
  const members: Member[] = [1, 2, 3].map((i) => ({ name: `e${i}`, host: `127.0.0.${40 + i}`, alive: false }));
  const cluster = members.map((m) => `${m.name}=http://${m.host}:${ETCD_PEER}`).join(",");
  const nameById = new Map<string, string>();
  const version = (spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout ?? "").split("\n")[0]?.replace("etcd Version: ", "") ?? "?";
  const rawStatus = (m: Member, timeoutMs = 1000) => httpJson<EtcdStatus>("POST", m.host, ETCD_CLIENT, "/v3/maintenance/status", "{}", timeoutMs);
  const start = async (m: Member) => {
    mkdirSync(join(dir, "etcd"), { recursive: true });
    const log = join(dir, "etcd", `${m.name}.log`);
    const args = [
      "--name", m.name,
      "--data-dir", join(dir, "etcd", `${m.name}.etcd`),
      "--listen-client-urls", `http://${m.host}:${ETCD_CLIENT}`,
      "--advertise-client-urls", `http://${m.host}:${ETCD_CLIENT}`,
      "--listen-peer-urls", `http://${m.host}:${ETCD_PEER}`,
      "--initial-advertise-peer-urls", `http://${m.host}:${ETCD_PEER}`,
      "--initial-cluster", cluster,
      "--initial-cluster-token", "flotilla-bench",
      "--initial-cluster-state", "new",
      "--heartbeat-interval", String(heartbeatMs),
      "--election-timeout", String(electionMs),
      "--logger", "zap",
      "--log-outputs", "stderr",
    ];
    const child = spawnLogged(bin, args, log);
    child.stdout!.resume();
    m.proc = child;
    let exited: Error | undefined;
    child.once("exit", (code, signal) => {
      m.alive = false;
      exited = new Error(`etcd ${m.name} exited (${code ?? signal}): ${tail(log)}`);
    });
    // Ready when its client port answers; a member waiting for its peers answers only once the cluster has formed.
    await until(`etcd ${m.name} to answer`, 30_000, async () => {
      if (exited) throw exited;
      const s = await rawStatus(m);
      nameById.set(s.header.member_id, m.name);
      return true;
    });
    if (exited) throw exited;
    m.alive = true;
  };
  return {
    name: "etcd",
    version,
    description: "etcd v3 JSON gateway",
    members,
    start,
    startAll: async () => {
      await Promise.all(members.map(start));
    },
    status: async (m, timeoutMs) => {
      const s = await rawStatus(m, timeoutMs);
      nameById.set(s.header.member_id, m.name);
      const leaderKnown = s.leader !== undefined && s.leader !== "0";
      return {
        isLeader: leaderKnown && s.leader === s.header.member_id,
        leader: leaderKnown ? (nameById.get(s.leader) ?? `id:${s.leader}`) : undefined,
        index: Number(s.raftAppliedIndex ?? s.raftIndex),
      };
    },
    put: async (m, key, value) => {
      const reply = await http("POST", m.host, ETCD_CLIENT, "/v3/kv/put", JSON.stringify({ key: b64(key), value: b64(value) }));
      if (reply.status !== 200) throw new Error(`put: ${reply.status} ${reply.body.slice(0, 200)}`);
    },
    read: async (m, key) => {
      const reply = await http("POST", m.host, ETCD_CLIENT, "/v3/kv/range", JSON.stringify({ key: b64(key) }));
      if (reply.status !== 200) throw new Error(`range: ${reply.status} ${reply.body.slice(0, 200)}`);
    },
  };
}

// ------------------------------------------------------------------------------------------------- phases

/** The member that says it is the leader, among the live ones; undefined if none does right now. */
async function findLeader(sys: System): Promise<Member | undefined> {
  const live = sys.members.filter((m) => m.alive);
  const statuses = await Promise.all(live.map((m) => sys.status(m).catch(() => undefined)));
  return live.find((_, i) => statuses[i]?.isLeader);
}

/** Looks the leader up for many workers at once: one lookup in flight, every 10 ms until found. */
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

interface LoadResult {
  concurrency: number;
  ops: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p99: number;
  errors: number;
}

/** `concurrency` workers run `op` against the leader for warm-up + measure; counts what completes in the window. */
async function load(sys: System, concurrency: number, warmupS: number, measureS: number, op: (m: Member, worker: number, seq: number) => Promise<void>): Promise<LoadResult> {
  const cache = new LeaderCache(sys);
  await cache.refind();
  const start = now();
  const windowStart = start + warmupS * 1000;
  const windowEnd = windowStart + measureS * 1000;
  const latencies: number[] = [];
  let errors = 0;
  let stop = false;
  const worker = async (w: number) => {
    for (let seq = 0; !stop; seq++) {
      const t0 = now();
      let done = false;
      while (!stop && !done) {
        const m = await cache.get();
        try {
          await op(m, w, seq);
          done = true;
        } catch {
          errors++;
          cache.invalidate(m);
          await sleep(5);
        }
      }
      const t1 = now();
      if (done && t1 >= windowStart && t1 <= windowEnd) latencies.push(t1 - t0);
    }
  };
  const workers = Array.from({ length: concurrency }, (_, w) => worker(w));
  await sleep(windowEnd - now());
  stop = true;
  await deadline(`${sys.name}: in-flight requests to finish`, 15_000, Promise.all(workers));
  latencies.sort((a, b) => a - b);
  return { concurrency, ops: latencies.length, seconds: measureS, perSecond: latencies.length / measureS, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

interface FailoverResult {
  killed: string;
  newLeader: string;
  toLeaderMs: number;
  toWriteMs: number;
  catchUpMs: number;
}

/** kill -9 the leader under one writing proposer; time a new leader in a survivor's status and the first write. */
async function failover(sys: System, value: string, round: number): Promise<FailoverResult> {
  const cache = new LeaderCache(sys);
  const old = await cache.refind();
  let stop = false;
  let tKill = Infinity;
  let tWrite: number | undefined;
  let acked = 0;
  const writer = (async () => {
    for (let seq = 0; !stop; seq++) {
      const m = await cache.get().catch(() => undefined);
      if (!m) continue;
      const sent = now();
      try {
        await sys.put(m, `failover/${round}/${seq % 100}`, value, `f${round}-${seq}-${process.pid}`);
        acked++;
        if (sent > tKill && tWrite === undefined) tWrite = now();
      } catch {
        cache.invalidate(m);
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
    const survivors = sys.members.filter((m) => m !== old);
    const [newLeader, tLeader] = await until(`${sys.name}: a new leader after killing ${old.name}`, 30_000, async () => {
      const statuses = await Promise.all(survivors.map((m) => sys.status(m, 500).catch(() => undefined)));
      const seen = statuses.find((s) => s?.leader !== undefined && s.leader !== old.name);
      return seen ? ([seen.leader!, now()] as const) : undefined;
    }, 5);
    await until(`${sys.name}: the first write after killing ${old.name}`, 30_000, async () => (tWrite !== undefined ? true : undefined), 5);
    stop = true;
    await deadline(`${sys.name}: the failover writer to stop`, 10_000, writer);
    await deadline(`${sys.name}: ${old.name} to exit`, 5_000, exited);
    // Bring it back and wait until it has applied what the leader had committed when it came back.
    const tRestart = now();
    await deadline(`${sys.name}: restart ${old.name}`, 30_000, sys.start(old));
    const leader = await new LeaderCache(sys).refind();
    const target = (await sys.status(leader)).index;
    await until(`${sys.name}: ${old.name} to catch up to ${target}`, 60_000, async () => ((await sys.status(old)).index >= target ? true : undefined), 20);
    return { killed: old.name, newLeader, toLeaderMs: tLeader - tKill, toWriteMs: tWrite! - tKill, catchUpMs: now() - tRestart };
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
  const value = "v".repeat(options.valueBytes);
  log(`${sys.name}: starting ${sys.members.map((m) => `${m.name}@${m.host}`).join(", ")}`);
  await deadline(`${sys.name}: start`, 60_000, sys.startAll());
  const first = await new LeaderCache(sys).refind();
  log(`${sys.name}: leader ${first.name}`);
  const writes: LoadResult[] = [];
  for (const c of options.levels) {
    const r = await deadline(`${sys.name}: ${c} proposers`, (options.warmup + options.seconds) * 1000 + 60_000, load(sys, c, options.warmup, options.seconds, (m, w, seq) => sys.put(m, `bench/${w}/${seq % 64}`, value, `${c}-${w}-${seq}-${process.pid}`)));
    log(`${sys.name}: ${c} proposers: ${r.perSecond.toFixed(0)}/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.errors} errors`);
    writes.push(r);
  }
  const reads = await deadline(`${sys.name}: reads`, (1 + options.readSeconds) * 1000 + 60_000, load(sys, options.readers, 1, options.readSeconds, (m, w) => sys.read(m, `bench/${w % 16}/0`)));
  log(`${sys.name}: ${options.readers} readers: ${reads.perSecond.toFixed(0)}/s, p50 ${reads.p50.toFixed(2)} ms, p99 ${reads.p99.toFixed(2)} ms, ${reads.errors} errors`);
  const failovers: FailoverResult[] = [];
  for (let i = 0; i < options.failovers; i++) {
    const f = await deadline(`${sys.name}: failover ${i + 1}`, 180_000, failover(sys, value, i));
    log(`${sys.name}: failover ${i + 1}: killed ${f.killed}, new leader ${f.newLeader} after ${f.toLeaderMs.toFixed(0)} ms, first write after ${f.toWriteMs.toFixed(0)} ms; ${f.killed} caught up in ${f.catchUpMs.toFixed(0)} ms`);
    failovers.push(f);
    await sleep(1000);
  }
  return { system: sys, writes, reads, failovers };
}

async function stopSystem(sys: System): Promise<void> {
  const exits: Promise<unknown>[] = [];
  for (const m of sys.members) {
    const p = m.proc;
    m.alive = false;
    if (p && p.exitCode === null && p.signalCode === null) {
      exits.push(new Promise((r) => p.once("exit", r)));
      p.kill("SIGKILL");
    }
  }
  await deadline(`${sys.name}: stop`, 10_000, Promise.all(exits));
  agent.destroy();
  agent = newAgent();
}

// ------------------------------------------------------------------------------------------------- report

function machine(etcdVersion: string): string {
  const cpu = cpus();
  const load = loadavg().map((l) => l.toFixed(2)).join(" ");
  return `${cpu.length} cores (${cpu[0]?.model.trim() ?? "unknown"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, Node ${process.version}, etcd ${etcdVersion}; load average ${load}`;
}

function report(results: SystemResult[], options: Options, header: string[]): string {
  const lines = [...header, ""];
  const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : "-");
  lines.push(`Committed writes, ${options.valueBytes}-byte values, ${options.seconds} s per level after ${options.warmup} s of warm-up:`, "");
  lines.push("| system        | concurrency | proposals/s | p50 ms | p99 ms | errors |", "|---------------|------------:|------------:|-------:|-------:|-------:|");
  for (const c of options.levels) {
    for (const r of results) {
      const w = r.writes.find((x) => x.concurrency === c)!;
      lines.push(`| ${r.system.name.padEnd(13)} | ${String(c).padStart(11)} | ${fmt(w.perSecond, 0).padStart(11)} | ${fmt(w.p50, 2).padStart(6)} | ${fmt(w.p99, 2).padStart(6)} | ${String(w.errors).padStart(6)} |`);
    }
  }
  lines.push("", `Linearizable reads, ${options.readers} concurrent readers, ${options.readSeconds} s:`, "");
  lines.push("| system        | reads/s | p50 ms | p99 ms | errors |", "|---------------|--------:|-------:|-------:|-------:|");
  for (const r of results) lines.push(`| ${r.system.name.padEnd(13)} | ${fmt(r.reads.perSecond, 0).padStart(7)} | ${fmt(r.reads.p50, 2).padStart(6)} | ${fmt(r.reads.p99, 2).padStart(6)} | ${String(r.reads.errors).padStart(6)} |`);
  lines.push("", "Failover (kill -9 the leader under one writing proposer), ms from the kill:", "");
  lines.push("| system        | round | killed | new leader | to new leader | to first write | killed member caught up after restart |", "|---------------|------:|--------|------------|--------------:|---------------:|--------------------------------------:|");
  for (const r of results) {
    r.failovers.forEach((f, i) =>
      lines.push(`| ${r.system.name.padEnd(13)} | ${String(i + 1).padStart(5)} | ${f.killed.padEnd(6)} | ${f.newLeader.padEnd(10)} | ${fmt(f.toLeaderMs, 0).padStart(13)} | ${fmt(f.toWriteMs, 0).padStart(14)} | ${fmt(f.catchUpMs, 0).padStart(37)} |`),
    );
    if (r.failovers.length) {
      lines.push(`| ${r.system.name.padEnd(13)} | median |        |            | ${fmt(median(r.failovers.map((f) => f.toLeaderMs)), 0).padStart(13)} | ${fmt(median(r.failovers.map((f) => f.toWriteMs)), 0).padStart(14)} | ${fmt(median(r.failovers.map((f) => f.catchUpMs)), 0).padStart(37)} |`);
    }
  }
  return lines.join("\n");
}

// --------------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), "flotilla-bench-raft-"));
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
  const raft = raftSystem(dir);
  const etcd = etcdSystem(dir, options.etcd, options.etcdHeartbeatMs, options.etcdElectionMs);
  const script = relative(process.cwd(), process.argv[1] ?? "") || process.argv[1];
  const header = [
    `- **Command:** \`node ${script} ${process.argv.slice(2).join(" ")}\``.replace(/ `$/, "`"),
    `- **Date:** ${new Date().toISOString().replace("T", " ").slice(0, 16)} UTC`,
    `- **Machine:** ${machine(etcd.version)}`,
    `- **Systems:** ${raft.name}: ${raft.version}, on 127.0.0.31-33 (raft ${RAFT_PORT}, http ${RAFT_HTTP}); etcd: ${etcd.version} (heartbeat ${options.etcdHeartbeatMs} ms, election ${options.etcdElectionMs} ms${options.etcdHeartbeatMs === 100 && options.etcdElectionMs === 1000 ? ", its defaults" : ""}; otherwise default settings, fsync on), on 127.0.0.41-43 (client ${ETCD_CLIENT}, peer ${ETCD_PEER}), through its v3 JSON gateway. Data dirs on the OS temp dir. Same client: node:http, keep-alive agent, one request at a time per worker, writes to the leader.`,
  ];
  log(header.join("\n"));
  const results: SystemResult[] = [];
  for (const sys of [raft, etcd]) {
    if (options.only && options.only !== (sys === raft ? "raft" : "etcd")) continue;
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
    process.stderr.write(`bench/raft: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
