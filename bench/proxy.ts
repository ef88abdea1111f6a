// Services' data path: HTTP through a service VIP with the userspace proxy, through the same VIP with the nftables
// proxy, and through the HTTP ingress, each against connecting to the backends directly, in one run. The load is
// `wrk` (Debian's package: `apt-get install -y wrk`); the figures are requests/s and wrk's p50 / p99 latency, and
// their ratios to the direct case.
//
//   npm run -s bench:proxy -- [--seconds S] [--warmup S] [--threads N] [--connections N] [--rounds N]
//        [--cases direct,userspace,nftables,direct-ct,ingress] [--cpu-prof DIR] [--wrk BIN] [--keep-logs]
//   (or: npm run build && node dist/bench/proxy.js ...; needs root: it creates a network namespace and nft rules)
//
// Everything runs inside one network namespace the bench creates (flbench<pid>, deleted at the end): loopback up, a
// veth pair with the node's address 10.232.0.1/24 and the three replicas' addresses 10.232.0.11-13 on one end, and
// a route for the service range 10.96.0.0/12 through it (the nftables proxy needs a route to the VIP for connect()
// to reach its output hook). Nothing outside that namespace is dialled: every process that sends or accepts
// traffic (the backends, the proxies, wrk) runs under `nsenter --net=/run/netns/<ns>`; the nftables proxy is
// driven from this process with its `netns` option, so only `nft` enters the namespace.
//
// The backend: three replicas, each its own Node process (this file in its `__child backend` role): a node:http
// server answering every request with 200 and a 22-byte text body, keep-alive on. Not busybox httpd: it has no
// keep-alive and forks a process per connection, so it would measure fork and connect, not the proxies' data path.
//
// Cases, one after the other (never two at once), each with the same wrk settings (`--threads`, default 3, and
// `--connections`, default 30; keep-alive, wrk's default), a warm-up of `--warmup` s that is not counted and then
// `--seconds` s measured with `--latency`:
//   direct     wrk thread i dials replica i mod 3 (a wrk thread uses one address, so the default of 3 threads
//              spreads the connections over the replicas evenly, as the proxies do; one replica alone would cap
//              the baseline at one Node process);
//   userspace  UserspaceProxy (src/net/userspace-proxy.ts) in its own Node process, the VIP 10.96.0.10:80 held
//              by DummyInterfaceVips (a dummy interface, or an empty bridge on kernels without one), round-robin per
//              connection: with keep-alive, each connection is given a replica once, when it opens;
//   nftables   NftablesProxy (src/net/nftables-proxy.ts): DNAT of the same VIP in the kernel (random per connection);
//   direct-ct  as direct, while NftablesProxy's table is loaded: nothing is NATed, but its nat chains turn on
//              connection tracking in the namespace, so every packet passes conntrack, as on any node with NAT
//              rules (Docker's among them); it splits the nftables case's cost into conntrack and DNAT;
//   ingress    IngressServer (src/net/ingress-server.ts) in its own Node process on 10.232.0.1:80, one rule for
//              host "" and path "/" to the service, round-robin per request over keep-alive backend connections.
// With `--rounds N` the cases run N times in rotation and the table shows medians. Also measured, over the
// middle of each measured window (from /proc): CPU per request of wrk, the replicas and the proxy process, how many
// cores our processes and the whole machine kept busy (the machine may be shared), and how the replicas shared
// the requests. `--cpu-prof DIR` runs the userspace proxy's and the ingress's processes under `node --cpu-prof`,
// writes the profiles to DIR and prints their top functions by self time.
//
// Every phase has a deadline; every process is killed, the namespace deleted and the temp dir removed on exit, on
// errors and on Ctrl-C. Child processes also exit when this process goes away (their stdin closes).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, relative, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { IngressServer } from "../src/net/ingress-server.js";
import { NftablesProxy, nftablesAvailable, runNft } from "../src/net/nftables-proxy.js";
import type { ClusterNetworkView, ServiceView } from "../src/net/types.js";
import { UserspaceProxy } from "../src/net/userspace-proxy.js";
import { DummyInterfaceVips } from "../src/net/vip-addresses.js";
import { deadline, median, now, sleep } from "./lib/timing.js";

// ------------------------------------------------------------------------------------------------- the layout

/** The node's address, on the namespace's veth. */
const NODE_IP = "10.232.0.1";
const NODE_PREFIX = 24;
const REPLICA_IPS = ["10.232.0.11", "10.232.0.12", "10.232.0.13"];
const REPLICA_PORT = 8080;
const VIP = "10.96.0.10";
const VIP_PORT = 80;
const SERVICE_RANGE = "10.96.0.0/12";
const INGRESS_PORT = 80;
/** The veth pair inside the namespace (names are per namespace). */
const VETH = "flb0";
const VETH_PEER = "flb1";
/** DummyInterfaceVips' interface for the userspace proxy's VIP. */
const VIP_INTERFACE = "flotilla0";
const NETNS_PREFIX = "flbench";

const SCRIPT = fileURLToPath(import.meta.url);
const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;

const CASES = ["direct", "userspace", "nftables", "direct-ct", "ingress"] as const;
type CaseName = (typeof CASES)[number];

const SERVICE: ServiceView = {
  namespace: "bench",
  name: "web",
  clusterIp: VIP,
  ports: [{
    name: "",
    port: VIP_PORT,
    protocol: "TCP",
    nodePort: 0,
    backends: REPLICA_IPS.map((address, i) => ({ address, port: REPLICA_PORT, pod: `bench/web-${i + 1}`, node: "bench" })),
  }],
  sessionAffinity: "None",
};

const VIEW: ClusterNetworkView = {
  services: [SERVICE],
  ingresses: [{ namespace: "bench", name: "web", rules: [{ host: "", paths: [{ pathPrefix: "/", service: "web", port: VIP_PORT }] }] }],
};

// ---------------------------------------------------------------------------------------------------- options

const USAGE = `usage: node dist/bench/proxy.js [options]      (root: creates a network namespace and nftables rules)
  --seconds S        measured seconds per case (default 10)
  --warmup S         wrk warm-up per case, not counted (default 2)
  --threads N        wrk threads (default 3: the direct case gives thread i replica i mod 3)
  --connections N    wrk connections, spread over the threads (default 30)
  --rounds N         run the cases N times in rotation; the table shows medians (default 1)
  --cases LIST       among direct,userspace,nftables,direct-ct,ingress (default all; ratios need direct)
  --cpu-prof DIR     run the userspace proxy and the ingress under node --cpu-prof, profiles to DIR
  --wrk BIN          the wrk binary (default wrk, from PATH; Debian: apt-get install -y wrk)
  --keep-logs        keep the children's logs (in the OS temp dir)`;

/** A problem with how the bench was started or what the machine lacks: reported without a stack trace. */
class SetupError extends Error {}

interface Options {
  seconds: number;
  warmup: number;
  threads: number;
  connections: number;
  rounds: number;
  cases: CaseName[];
  cpuProf?: string;
  wrk: string;
  keepLogs: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      threads: { type: "string", default: "3" },
      connections: { type: "string", default: "30" },
      rounds: { type: "string", default: "1" },
      cases: { type: "string", default: CASES.join(",") },
      "cpu-prof": { type: "string" },
      wrk: { type: "string", default: "wrk" },
      "keep-logs": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (flag: string, text: string, min: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new SetupError(`--${flag}: "${text}" must be an integer >= ${min}`);
    return n;
  };
  const cases = values.cases.split(",").map((c) => c.trim()).filter((c) => c !== "");
  for (const c of cases) if (!(CASES as readonly string[]).includes(c)) throw new SetupError(`--cases: "${c}" is not one of ${CASES.join(", ")}`);
  const threads = int("threads", values.threads, 1);
  const connections = int("connections", values.connections, 1);
  if (connections < threads) throw new SetupError("--connections must be at least --threads (wrk gives each thread connections / threads)");
  return {
    seconds: int("seconds", values.seconds, 1),
    warmup: int("warmup", values.warmup, 0),
    threads,
    connections,
    rounds: int("rounds", values.rounds, 1),
    cases: CASES.filter((c) => cases.includes(c)),
    cpuProf: values["cpu-prof"] === undefined ? undefined : resolve(values["cpu-prof"]),
    wrk: values.wrk,
    keepLogs: values["keep-logs"],
  };
}

// ------------------------------------------------------------------------------------------------- processes

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  log: string;
  /** Resolves on exit (with the code or signal); never rejects. */
  exited: Promise<string>;
  /** Waits for the next stdout line matching `re`; rejects if the process exits first or after `ms`. */
  nextLine(re: RegExp, ms: number, label: string): Promise<RegExpExecArray>;
  /** All of stdout so far. */
  stdout(): string;
}

function tail(file: string, chars = 2000): string {
  try {
    return readFileSync(file, "utf8").slice(-chars).trim();
  } catch {
    return "";
  }
}

/**
 * Starts `cmd args` inside the namespace (`nsenter --net`, which execs it: the pid is the command's own), stdout
 * and stderr appended to a log file. Its stdin is a pipe this process holds: our own children exit when it closes.
 */
function startIn(netns: string, dir: string, name: string, cmd: string, args: string[]): Proc {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, "a");
  const child = spawn("nsenter", [`--net=/run/netns/${netns}`, cmd, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  children.add(child);
  child.stdin!.on("error", () => {});
  let out = "";
  const waiters = new Set<(line: string) => void>();
  const exited = new Promise<string>((resolveExit) => {
    child.once("error", (err) => resolveExit(`spawn error: ${err.message}`));
    child.once("exit", (code, signal) => resolveExit(signal ?? `exit ${code}`));
  });
  void exited.then(() => children.delete(child));
  child.once("close", () => closeSync(fd));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    writeSync(fd, `${line}\n`);
    out += `${line}\n`;
    for (const w of [...waiters]) w(line);
  });
  child.stderr!.on("data", (d: Buffer) => writeSync(fd, d));
  const nextLine = (re: RegExp, ms: number, label: string) =>
    deadline(label, ms, new Promise<RegExpExecArray>((resolveLine, reject) => {
      const onLine = (line: string) => {
        const m = re.exec(line);
        if (!m) return;
        waiters.delete(onLine);
        resolveLine(m);
      };
      waiters.add(onLine);
      void exited.then((how) => {
        if (!waiters.has(onLine)) return;
        waiters.delete(onLine);
        reject(new Error(`${name} exited (${how}) before ${label}: ${tail(log)}`));
      });
    }));
  return { name, child, pid: child.pid ?? -1, log, exited, nextLine, stdout: () => out };
}

/** SIGTERM (so a profiled child writes its profile), then SIGKILL if it is not gone within `ms`. */
async function stopProc(p: Proc, ms = 10_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill("SIGTERM");
  try {
    await deadline(`${p.name} to exit`, ms, p.exited);
  } catch (err) {
    p.child.kill("SIGKILL");
    await deadline(`${p.name} to exit after SIGKILL`, 5000, p.exited);
    throw err;
  }
}

/** Runs a command to completion (no namespace); throws with its stderr when it fails. */
function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 15_000 });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.signal ?? `exit ${r.status}`}): ${r.stderr.trim()}`);
  return r.stdout;
}

// ------------------------------------------------------------------------------------------------- namespace

/** Deletes namespaces an earlier run of this bench left when it was killed (its pid no longer runs). */
function removeStaleNamespaces(log: (line: string) => void): void {
  if (!existsSync("/run/netns")) return;
  for (const name of readdirSync("/run/netns")) {
    const pid = new RegExp(`^${NETNS_PREFIX}(\\d+)$`).exec(name)?.[1];
    if (pid === undefined || existsSync(`/proc/${pid}`)) continue;
    log(`deleting ${name}, left by an earlier run (pid ${pid} is gone)`);
    spawnSync("ip", ["netns", "del", name], { timeout: 10_000 });
  }
}

function createNamespace(netns: string): void {
  run("ip", ["netns", "add", netns]);
  const ip = (...args: string[]) => run("ip", ["-n", netns, ...args]);
  ip("link", "set", "lo", "up");
  ip("link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER);
  ip("addr", "add", `${NODE_IP}/${NODE_PREFIX}`, "dev", VETH);
  for (const a of REPLICA_IPS) ip("addr", "add", `${a}/32`, "dev", VETH);
  ip("link", "set", VETH, "up");
  ip("link", "set", VETH_PEER, "up");
  ip("route", "add", SERVICE_RANGE, "dev", VETH, "src", NODE_IP);
}

// ------------------------------------------------------------------------------------------------ measurement

/** User and system CPU seconds of a process (all its threads), from /proc. */
function cpuSeconds(pid: number | undefined): { user: number; sys: number } {
  if (pid === undefined) return { user: 0, sys: 0 };
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return { user: Number(fields[11]) / CLOCK_TICKS, sys: Number(fields[12]) / CLOCK_TICKS };
  } catch {
    return { user: NaN, sys: NaN };
  }
}

const addCpu = (a: { user: number; sys: number }, b: { user: number; sys: number }) => ({ user: a.user + b.user, sys: a.sys + b.sys });
const subCpu = (a: { user: number; sys: number }, b: { user: number; sys: number }) => ({ user: a.user - b.user, sys: a.sys - b.sys });
const totalCpu = (a: { user: number; sys: number }) => a.user + a.sys;

/** Busy and total CPU time of the whole machine, in seconds (all cores), from /proc/stat. */
function machineCpu(): { busy: number; total: number } {
  const [, ...ticks] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const n = ticks.slice(0, 8).map(Number);
  const total = n.reduce((a, b) => a + b, 0);
  return { busy: (total - n[3]! - n[4]!) / CLOCK_TICKS, total: total / CLOCK_TICKS };
}

interface WrkResult {
  rps: number;
  requests: number;
  p50: number;
  p99: number;
  /** Socket errors and non-2xx/3xx responses, as wrk counts them. */
  errors: number;
  errorText: string;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function parseWrk(out: string): WrkResult {
  const rps = Number(/^Requests\/sec:\s+([\d.]+)/m.exec(out)?.[1]);
  const requests = Number(/^\s*(\d+) requests in /m.exec(out)?.[1]);
  const pct = (p: number) => {
    const m = new RegExp(`^\\s*${p}(?:\\.0+)?%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, "m").exec(out);
    return m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN;
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const parts = [socket ? socket[0] : "", non2xx ? `non-2xx/3xx ${non2xx}` : ""].filter((s) => s !== "");
  if (!Number.isFinite(rps) || !Number.isFinite(requests)) throw new Error(`cannot read wrk's output:\n${out}`);
  return { rps, requests, p50: pct(50), p99: pct(99), errors: socketErrors + non2xx, errorText: parts.join("; ") };
}

interface CaseResult {
  name: CaseName;
  round: number;
  wrk: WrkResult;
  /** CPU µs per request over the sampled window (user + system), and the share of all of it spent in the kernel. */
  cpu: { wrk: number; replicas: number; proxy: number; proxyUser: number; kernelShare: number };
  /** Cores kept busy over the sampled window: our processes (wrk, replicas, proxy) and the whole machine. */
  cores: { ours: number; machine: number };
  /** Requests each replica served in the measured run, and connections it accepted. */
  perReplica: { requests: number; connections: number }[];
}

interface Replica {
  proc: Proc;
  address: string;
}

/** What a replica has served so far: it prints "served <requests> <connections>" on SIGUSR2. */
async function served(r: Replica): Promise<{ requests: number; connections: number }> {
  const line = r.proc.nextLine(/^served (\d+) (\d+)$/, 5000, `${r.proc.name}'s request count`);
  r.proc.child.kill("SIGUSR2");
  const m = await line;
  return { requests: Number(m[1]), connections: Number(m[2]) };
}

interface Bench {
  netns: string;
  dir: string;
  options: Options;
  replicas: Replica[];
  /** The .cpuprofile files this run asked for (--cpu-prof). */
  profiles: string[];
  log: (line: string) => void;
}

/** The wrk script of the direct case: thread i dials replica i mod N (each wrk thread uses one address). */
function spreadScript(): string {
  const list = REPLICA_IPS.map((a) => `{ "${a}", "${REPLICA_PORT}" }`).join(", ");
  return `-- Written by bench/proxy.ts: wrk thread i connects to replica i mod ${REPLICA_IPS.length}.
local replicas = { ${list} }
local n = 0
function setup(thread)
  local r = replicas[n % #replicas + 1]
  thread.addr = wrk.lookup(r[1], r[2])[1]
  n = n + 1
end
`;
}

/** Runs wrk in the namespace for `seconds` and returns its output; `sample` is called while it runs. */
async function runWrk(b: Bench, label: string, url: string, seconds: number, latency: boolean, script: string | undefined, sample?: (wrk: Proc) => Promise<void>): Promise<string> {
  const { options } = b;
  const args = ["-t", String(options.threads), "-c", String(options.connections), "-d", `${seconds}s`, "--timeout", "5s"];
  if (latency) args.push("--latency");
  if (script) args.push("-s", script);
  args.push(url);
  const p = startIn(b.netns, b.dir, label, options.wrk, args);
  const sampling = sample ? sample(p) : Promise.resolve();
  const how = await deadline(`${label}`, (seconds + 30) * 1000, p.exited).catch((err: unknown) => {
    p.child.kill("SIGKILL");
    throw err;
  });
  await sampling;
  if (how !== "exit 0") throw new Error(`${label}: wrk ${args.join(" ")} ended with ${how}: ${tail(p.log)}`);
  return p.stdout();
}

/** Starts this file in a child role inside the namespace and waits for its "ready" line. */
async function startChild(b: Bench, name: string, role: string, args: string[], profile?: string): Promise<Proc> {
  const node: string[] = [];
  if (profile !== undefined && b.options.cpuProf !== undefined) {
    mkdirSync(b.options.cpuProf, { recursive: true });
    rmSync(join(b.options.cpuProf, profile), { force: true });
    b.profiles.push(join(b.options.cpuProf, profile));
    node.push("--cpu-prof", "--cpu-prof-dir", b.options.cpuProf, "--cpu-prof-name", profile);
  }
  const p = startIn(b.netns, b.dir, name, process.execPath, [...node, SCRIPT, "__child", role, ...args]);
  try {
    await p.nextLine(/^ready\b/, 20_000, `${name} to be ready`);
  } catch (err) {
    p.child.kill("SIGKILL");
    throw err;
  }
  return p;
}

/** NftablesProxy in the namespace, synced with the service: its table `ip flotilla` is loaded when this resolves. */
async function loadNftables(b: Bench): Promise<NftablesProxy> {
  const nft = new NftablesProxy({ netns: b.netns, log: { info: () => {}, warn: (obj, msg) => b.log(`nftables: ${msg} ${JSON.stringify(obj)}`) } });
  try {
    await deadline("nftables sync", 30_000, nft.sync([SERVICE]));
  } catch (err) {
    await nft.close().catch(() => {});
    throw err;
  }
  return nft;
}

/** One case: set up its path, warm up, measure, tear down. */
async function runCase(b: Bench, name: CaseName, round: number): Promise<CaseResult> {
  const { options } = b;
  let url = `http://${VIP}:${VIP_PORT}/`;
  let script: string | undefined;
  let proxy: Proc | undefined;
  let nft: NftablesProxy | undefined;
  const suffix = options.rounds > 1 ? `-round${round + 1}` : "";
  try {
    switch (name) {
      case "direct":
      case "direct-ct":
        url = `http://${REPLICA_IPS[0]}:${REPLICA_PORT}/`;
        script = join(b.dir, "spread.lua");
        writeFileSync(script, spreadScript());
        if (name === "direct-ct") nft = await loadNftables(b);
        break;
      case "userspace":
        proxy = await startChild(b, `userspace${suffix}`, "userspace", [b.netns, JSON.stringify(SERVICE)], `userspace${suffix}.cpuprofile`);
        break;
      case "nftables":
        nft = await loadNftables(b);
        break;
      case "ingress":
        url = `http://${NODE_IP}:${INGRESS_PORT}/`;
        proxy = await startChild(b, `ingress${suffix}`, "ingress", [NODE_IP, String(INGRESS_PORT), JSON.stringify(VIEW)], `ingress${suffix}.cpuprofile`);
        break;
    }
    if (options.warmup > 0) {
      const warm = parseWrk(await runWrk(b, `wrk-${name}${suffix}-warmup`, url, options.warmup, false, script));
      if (warm.requests === 0 || warm.errors > 0) throw new Error(`${name}: the warm-up failed: ${warm.requests} requests, ${warm.errorText}`);
    }
    const before = await Promise.all(b.replicas.map(served));
    const pids = { replicas: b.replicas.map((r) => r.proc.pid), proxy: proxy?.pid };
    type Cpu = { user: number; sys: number };
    let window: { seconds: number; wrk: Cpu; replicas: Cpu; proxy: Cpu; machine: number } | undefined;
    const sample = async (wrk: Proc) => {
      // The middle of the run: after wrk has connected, before it stops.
      const edge = Math.min(0.5, options.seconds / 4);
      await sleep(edge * 1000);
      const take = () => ({
        t: now(),
        wrk: cpuSeconds(wrk.pid),
        replicas: pids.replicas.reduce((sum, pid) => addCpu(sum, cpuSeconds(pid)), { user: 0, sys: 0 }),
        proxy: cpuSeconds(pids.proxy),
        machine: machineCpu().busy,
      });
      const t0 = take();
      await sleep((options.seconds - 2 * edge) * 1000);
      const t1 = take();
      window = { seconds: (t1.t - t0.t) / 1000, wrk: subCpu(t1.wrk, t0.wrk), replicas: subCpu(t1.replicas, t0.replicas), proxy: subCpu(t1.proxy, t0.proxy), machine: t1.machine - t0.machine };
    };
    const result = parseWrk(await runWrk(b, `wrk-${name}${suffix}`, url, options.seconds, true, script, sample));
    const after = await Promise.all(b.replicas.map(served));
    if (!window) throw new Error(`${name}: no CPU sample`);
    const w: { seconds: number; wrk: Cpu; replicas: Cpu; proxy: Cpu; machine: number } = window;
    const perRequest = (cpu: number) => (cpu * 1e6) / (result.rps * w.seconds);
    const all = addCpu(addCpu(w.wrk, w.replicas), w.proxy);
    return {
      name,
      round,
      wrk: result,
      cpu: { wrk: perRequest(totalCpu(w.wrk)), replicas: perRequest(totalCpu(w.replicas)), proxy: perRequest(totalCpu(w.proxy)), proxyUser: perRequest(w.proxy.user), kernelShare: all.sys / totalCpu(all) },
      cores: { ours: totalCpu(all) / w.seconds, machine: w.machine / w.seconds },
      perReplica: after.map((a, i) => ({ requests: a.requests - before[i]!.requests, connections: a.connections - before[i]!.connections })),
    };
  } finally {
    if (proxy) await stopProc(proxy);
    if (nft) await deadline("nftables proxy close", 30_000, nft.close());
  }
}

// -------------------------------------------------------------------------------------------------- profiles

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  samples?: number[];
}

/** The top functions and scripts of a .cpuprofile by self time, as a share of the samples that were not idle. */
function summarizeProfile(file: string, top = 12): string {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const hits = new Map<number, number>();
  if (profile.samples) for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  else for (const n of profile.nodes) hits.set(n.id, n.hitCount ?? 0);
  const root = `file://${process.cwd()}/`;
  const shortUrl = (url: string) => url.replace(root, "").replace(/^node:internal\//, "internal/");
  const byFunction = new Map<string, number>();
  const byScript = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const n of profile.nodes) {
    const count = hits.get(n.id) ?? 0;
    if (count === 0) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === "(idle)") {
      idle += count;
      continue;
    }
    busy += count;
    const fn = url ? `${functionName || "(anonymous)"} ${shortUrl(url)}:${lineNumber + 1}` : functionName || "(native)";
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + count);
    const script = url ? shortUrl(url) : functionName;
    byScript.set(script, (byScript.get(script) ?? 0) + count);
  }
  const pct = (c: number) => `${((100 * c) / Math.max(1, busy)).toFixed(1)}%`;
  const list = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, c]) => `    ${pct(c).padStart(6)}  ${k}`);
  return [
    `  ${file}: ${busy + idle} samples, ${((100 * idle) / Math.max(1, busy + idle)).toFixed(0)}% idle; shares below are of the ${busy} busy samples (self time)`,
    "  by function:",
    ...list(byFunction, top),
    "  by script:",
    ...list(byScript, Math.ceil(top / 2)),
  ].join("\n");
}

// ------------------------------------------------------------------------------------------------- report

function machine(wrkVersion: string, nftVersion: string, loadAtStart: number[]): string {
  const cpu = cpus();
  const load = loadAtStart.map((l) => l.toFixed(2)).join(" ");
  return `${cpu.length} cores (${cpu[0]?.model.trim() ?? "unknown"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, Node ${process.version}, ${wrkVersion}, ${nftVersion}; load average ${load} at the start`;
}

/** A markdown table whose columns line up in a terminal too. `right` marks right-aligned columns. */
function table(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (right[i] ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

const fmt = (n: number, d: number) => (Number.isFinite(n) ? n.toFixed(d) : "-");

const PATHS: Record<CaseName, string> = {
  direct: `wrk → replicas (thread i → replica i mod ${REPLICA_IPS.length})`,
  "direct-ct": "as direct, with NftablesProxy's table loaded (conntrack on, no NAT for this traffic)",
  userspace: `wrk → ${VIP}:${VIP_PORT} → UserspaceProxy (Node) → replica`,
  nftables: `wrk → ${VIP}:${VIP_PORT}, DNAT by NftablesProxy's rules → replica`,
  ingress: `wrk → ${NODE_IP}:${INGRESS_PORT} → IngressServer (Node, HTTP) → replica`,
};

interface Summary {
  name: CaseName;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  cpu: { wrk: number; replicas: number; proxy: number; proxyUser: number; kernelShare: number };
  cores: { ours: number; machine: number };
  share: number[];
  connections: number[];
}

function summarize(name: CaseName, runs: CaseResult[]): Summary {
  const med = (f: (r: CaseResult) => number) => median(runs.map(f));
  const totals = REPLICA_IPS.map((_, i) => runs.reduce((s, r) => s + r.perReplica[i]!.requests, 0));
  const all = totals.reduce((a, b) => a + b, 0);
  return {
    name,
    rps: med((r) => r.wrk.rps),
    p50: med((r) => r.wrk.p50),
    p99: med((r) => r.wrk.p99),
    errors: runs.reduce((s, r) => s + r.wrk.errors, 0),
    cpu: { wrk: med((r) => r.cpu.wrk), replicas: med((r) => r.cpu.replicas), proxy: med((r) => r.cpu.proxy), proxyUser: med((r) => r.cpu.proxyUser), kernelShare: med((r) => r.cpu.kernelShare) },
    cores: { ours: med((r) => r.cores.ours), machine: med((r) => r.cores.machine) },
    share: totals.map((t) => (100 * t) / Math.max(1, all)),
    connections: REPLICA_IPS.map((_, i) => median(runs.map((r) => r.perReplica[i]!.connections))),
  };
}

const allCpu = (s: Summary) => s.cpu.wrk + s.cpu.replicas + s.cpu.proxy;

function report(results: CaseResult[], skipped: Map<CaseName, string>, options: Options, header: string[]): string {
  const lines = [...header, ""];
  const summaries = options.cases.filter((c) => !skipped.has(c)).map((c) => summarize(c, results.filter((r) => r.name === c)));
  const direct = summaries.find((s) => s.name === "direct");
  const ratio = (v: number, base: number | undefined) => (base === undefined ? "-" : fmt(v / base, 2));
  const of = options.rounds > 1 ? `medians of ${options.rounds} rounds, ` : "";
  lines.push(`HTTP GET of a 22-byte body, wrk ${options.threads} threads, ${options.connections} connections (keep-alive), ${options.seconds} s per case after ${options.warmup} s of warm-up, ${of}ratios to direct:`, "");
  lines.push(table(
    ["case", "requests/s", "p50 ms", "p99 ms", "req/s ÷ direct", "p50 ÷ direct", "p99 ÷ direct", "errors"],
    [
      ...summaries.map((s) => [s.name, fmt(s.rps, 0), fmt(s.p50, 2), fmt(s.p99, 2), ratio(s.rps, direct?.rps), ratio(s.p50, direct?.p50), ratio(s.p99, direct?.p99), String(s.errors)]),
      ...[...skipped].map(([c, why]) => [c, "-", "-", "-", "-", "-", "-", `skipped: ${why}`]),
    ],
    [false, true, true, true, true, true, true, false],
  ));
  lines.push("", "Paths:", ...summaries.map((s) => `- ${s.name}: ${PATHS[s.name]}`));
  lines.push("", "CPU per request in the middle of the measured window (µs, user + system, from /proc; the proxy's user part in brackets), the share of it in the kernel, cores busy, and the replicas' share:", "");
  lines.push(table(
    ["case", "wrk µs/req", "replicas µs/req", "proxy µs/req", "all µs/req", "all ÷ direct", "in kernel", "cores: ours", "cores: machine", "requests per replica %", "connections per replica"],
    summaries.map((s) => [
      s.name,
      fmt(s.cpu.wrk, 1),
      fmt(s.cpu.replicas, 1),
      s.name === "userspace" || s.name === "ingress" ? `${fmt(s.cpu.proxy, 1)} (${fmt(s.cpu.proxyUser, 1)})` : "-",
      fmt(allCpu(s), 1),
      direct ? fmt(allCpu(s) / allCpu(direct), 2) : "-",
      `${fmt(100 * s.cpu.kernelShare, 0)}%`,
      fmt(s.cores.ours, 2),
      fmt(s.cores.machine, 2),
      s.share.map((x) => x.toFixed(0)).join(" / "),
      s.connections.map((x) => String(x)).join(" / "),
    ]),
    [false, true, true, true, true, true, true, true, true, true, true],
  ));
  if (options.rounds > 1) {
    lines.push("", "Every round:", "");
    lines.push(table(
      ["round", "case", "requests/s", "p50 ms", "p99 ms", "errors", "cores: machine"],
      results.map((r) => [String(r.round + 1), r.name, fmt(r.wrk.rps, 0), fmt(r.wrk.p50, 2), fmt(r.wrk.p99, 2), String(r.wrk.errors), fmt(r.cores.machine, 2)]),
      [true, false, true, true, true, true, true],
    ));
  }
  const aims: string[] = [];
  const nft = summaries.find((s) => s.name === "nftables");
  const user = summaries.find((s) => s.name === "userspace");
  if (direct && nft) aims.push(`nftables within 5% of direct: ${nft.rps / direct.rps >= 0.95 ? "met" : "NOT met"} (${fmt(nft.rps / direct.rps, 2)} of direct's requests/s)`);
  if (direct && user) aims.push(`userspace at least half of direct: ${user.rps / direct.rps >= 0.5 ? "met" : "NOT met"} (${fmt(user.rps / direct.rps, 2)})`);
  const ct = summaries.find((s) => s.name === "direct-ct");
  if (direct && nft && ct) aims.push(`of nftables' cost, conntrack alone (direct-ct) leaves ${fmt(ct.rps / direct.rps, 2)} of direct's requests/s and DNAT on top ${fmt(nft.rps / ct.rps, 2)} of direct-ct's`);
  if (aims.length > 0) lines.push("", `Aims: ${aims.join("; ")}.`);
  const errors = results.filter((r) => r.wrk.errors > 0);
  if (errors.length > 0) lines.push("", "wrk errors:", ...errors.map((r) => `- ${r.name} round ${r.round + 1}: ${r.wrk.errorText}`));
  return lines.join("\n");
}

// ------------------------------------------------------------------------------------------------ children

/** `__child <role> ...`: this file as a replica, the userspace proxy or the ingress, inside the namespace. */
async function child(role: string, args: string[]): Promise<void> {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const warnLog = { info: () => {}, warn: (obj: object, msg: string) => process.stderr.write(`${msg} ${JSON.stringify(obj, (_k, v: unknown) => (v instanceof Error ? v.message : v))}\n`) };
  let close: () => Promise<void> = async () => {};
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void deadline(`${role}: close`, 5000, close())
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        process.stderr.write(`${String(err)}\n`);
        process.exit(1);
      });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // The bench holds our stdin: when it goes away, so do we.
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();

  switch (role) {
    case "backend": {
      const [address, port, name] = args as [string, string, string];
      const body = Buffer.from(`hello from ${name.padEnd(10)}\n`);
      let requests = 0;
      let connections = 0;
      const server = createServer((_req, res) => {
        requests++;
        res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
        res.end(body);
      });
      server.on("connection", () => connections++);
      process.on("SIGUSR2", () => say(`served ${requests} ${connections}`));
      await new Promise<void>((ok, fail) => {
        server.once("error", fail);
        server.listen(Number(port), address, () => ok());
      });
      close = async () => {
        server.closeAllConnections();
        await new Promise<void>((ok) => server.close(() => ok()));
      };
      say(`ready ${address}:${port}`);
      return;
    }
    case "userspace": {
      const [netns, service] = args as [string, string];
      const proxy = new UserspaceProxy({ nodeAddresses: [], vips: new DummyInterfaceVips({ name: VIP_INTERFACE, netns, log: warnLog }), log: warnLog });
      close = () => proxy.close();
      await proxy.sync([JSON.parse(service) as ServiceView]);
      say(`ready ${VIP}:${VIP_PORT}`);
      return;
    }
    case "ingress": {
      const [address, port, view] = args as [string, string, string];
      const parsed = JSON.parse(view) as ClusterNetworkView;
      const ingress = new IngressServer({ listen: { address, port: Number(port) }, lookup: () => parsed, log: warnLog });
      close = () => ingress.close();
      await ingress.listen();
      say(`ready ${address}:${ingress.port}`);
      return;
    }
    default:
      throw new Error(`unknown child role ${role}`);
  }
}

// --------------------------------------------------------------------------------------------------- main

function wrkVersion(bin: string): string {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    throw new SetupError(`wrk not found ("${bin}"): install it, e.g. \`apt-get install -y wrk\` (Debian's package), or name it with --wrk BIN`);
  }
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  const m = /^wrk (\S+)/m.exec(text);
  if (!m) throw new Error(`"${bin} --version" did not print a wrk version: ${text.trim() || r.error?.message}`);
  return `wrk ${m[1]}`;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  const loadAtStart = loadavg();
  if (process.getuid?.() !== 0) throw new SetupError("needs root: it creates a network namespace and nftables rules (sudo npm run -s bench:proxy)");
  const wrk = wrkVersion(options.wrk);
  const nftVersion = (() => {
    try {
      return run("nft", ["--version"]).trim().split(" (")[0]!;
    } catch {
      return "nft not found";
    }
  })();
  if (options.threads % REPLICA_IPS.length !== 0) log(`note: --threads ${options.threads} is not a multiple of ${REPLICA_IPS.length}: the direct case spreads connections over the replicas unevenly`);

  const netns = `${NETNS_PREFIX}${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), "flotilla-bench-proxy-"));
  let cleaned = false;
  let namespaceMade = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    killAll();
    if (namespaceMade) spawnSync("ip", ["netns", "del", netns], { timeout: 10_000 });
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
  process.on("SIGHUP", onSignal);

  const script = relative(process.cwd(), process.argv[1] ?? "") || process.argv[1];
  const header = [
    `- **Command:** \`node ${script} ${process.argv.slice(2).join(" ")}\``.replace(/ `$/, "`"),
    `- **Date:** ${new Date().toISOString().replace("T", " ").slice(0, 16)} UTC`,
    `- **Machine:** ${machine(wrk, nftVersion, loadAtStart)}`,
    `- **Setup:** network namespace ${netns} (made and deleted by the run); ${REPLICA_IPS.length} replicas, each a node:http process on ${REPLICA_IPS.map((a) => `${a}:${REPLICA_PORT}`).join(", ")}; service ${SERVICE.namespace}/${SERVICE.name} on ${VIP}:${VIP_PORT}; the cases one after the other.`,
  ];
  log(header.join("\n"));

  removeStaleNamespaces(log);
  namespaceMade = true;
  createNamespace(netns);
  log(`namespace ${netns}: ${NODE_IP}/${NODE_PREFIX} and ${REPLICA_IPS.join(", ")} on ${VETH}, route ${SERVICE_RANGE} via ${VETH}`);
  const bench: Bench = { netns, dir, options, replicas: [], profiles: [], log };
  for (const [i, address] of REPLICA_IPS.entries()) {
    const name = `web-${i + 1}`;
    const proc = await startChild(bench, name, "backend", [address, String(REPLICA_PORT), name]);
    bench.replicas.push({ proc, address });
  }
  log(`replicas ready: ${bench.replicas.map((r) => `${r.address}:${REPLICA_PORT} (pid ${r.proc.pid})`).join(", ")}`);

  const results: CaseResult[] = [];
  const skipped = new Map<CaseName, string>();
  for (let round = 0; round < options.rounds; round++) {
    for (const name of options.cases) {
      if (skipped.has(name)) continue;
      if (name === "nftables") {
        const available = await deadline("nftables availability check", 30_000, nftablesAvailable({ netns }));
        if (!available.ok) {
          for (const c of ["nftables", "direct-ct"] as const) if (options.cases.includes(c)) skipped.set(c, available.reason);
          log(`nftables: skipped: ${available.reason}`);
          continue;
        }
      }
      log(`${name}${options.rounds > 1 ? ` (round ${round + 1})` : ""}: ${PATHS[name]}`);
      const r = await deadline(`${name}`, (options.warmup + options.seconds) * 1000 + 120_000, runCase(bench, name, round));
      log(`${name}: ${r.wrk.rps.toFixed(0)} requests/s, p50 ${r.wrk.p50.toFixed(2)} ms, p99 ${r.wrk.p99.toFixed(2)} ms, ${r.wrk.errors} errors; CPU µs/request wrk ${r.cpu.wrk.toFixed(1)}, replicas ${r.cpu.replicas.toFixed(1)}, proxy ${r.cpu.proxy.toFixed(1)}; cores ours ${r.cores.ours.toFixed(2)}, machine ${r.cores.machine.toFixed(2)}; requests per replica ${r.perReplica.map((p) => p.requests).join(" / ")}`);
      results.push(r);
    }
  }
  await Promise.all(bench.replicas.map((r) => stopProc(r.proc)));
  // Nothing of ours may be left in the namespace's nftables (NftablesProxy.close deletes its table).
  const left = await runNft(["list", "tables"], { netns }).catch(() => "");
  if (/flotilla/.test(left)) log(`warning: nft tables left in ${netns}: ${left.trim()}`);

  process.stdout.write(`${report(results, skipped, options, header)}\n`);
  const profiles = bench.profiles.filter((f) => existsSync(f));
  if (profiles.length > 0) process.stdout.write(`\nCPU profiles (node --cpu-prof), top items by self time:\n${profiles.map((f) => summarizeProfile(f)).join("\n")}\n`);
}

if (process.argv[2] === "__child") {
  child(process.argv[3] ?? "", process.argv.slice(4)).catch((err: unknown) => {
    process.stderr.write(`bench/proxy child: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
} else {
  main()
    .then(() => process.exit(0))
    .catch((e: unknown) => {
      const plain = e instanceof SetupError || String((e as NodeJS.ErrnoException).code).startsWith("ERR_PARSE_ARGS");
      process.stderr.write(`bench/proxy: ${e instanceof Error ? (plain ? e.message : (e.stack ?? e.message)) : String(e)}\n`);
      if (plain) process.stderr.write(`${USAGE}\n`);
      process.exit(1);
    });
}
