// Services' data path: HTTP through a service VIP with the userspace proxy, through the same VIP with the nftables
// proxy, and through the HTTP ingress, each against connecting to the backends directly, in one run. The load is
// `wrk` (Debian's package: `apt-get install -y wrk`); the figures are requests/s and wrk's p50 / p99 latency, and
// their ratios to the direct case.
//
//   npm run -s bench:proxy -- [--backend docker|process] [--image node|busybox] [--replicas N] [--seconds S]
//        [--warmup S] [--threads N] [--connections N] [--rounds N] [--cases LIST] [--cpu-prof DIR] [--wrk BIN]
//        [--keep-logs]
//   (or: npm run build && node dist/bench/proxy.js ...; needs root: it creates a network namespace, a dockerd in
//   it and nft rules)
//
// Everything runs inside one network namespace the bench creates (flbench<pid>, deleted at the end): loopback up, a
// veth pair with the node's address 10.232.0.1/24 and a second one, 10.232.0.2, on one end, and a route for the
// service range 10.96.0.0/12 through it from 10.232.0.2 (the nftables proxy needs a route to the VIP for connect()
// to reach its output hook; VIP_CLIENT_IP says why its own source address). Nothing outside
// that namespace is dialled: every process that sends or accepts traffic (the backends, the proxies, wrk, dockerd
// and its containers) runs in it (`nsenter --net=/run/netns/<ns>`, containers in namespaces of their own behind
// its docker0 bridge); the nftables proxy is driven from this process with its `netns` option, so only `nft`
// enters the namespace.
//
// The backends (bench/lib/proxy-backends.ts), `--replicas` replicas of service bench/web (VIP 10.96.0.10:80). The
// default is one, the issue's "an httpd pod": direct and the VIP then reach the same server over the same
// connections, so the ratios are the proxy's own cost. With several, see the direct case for what else differs.
// The backends:
//   --backend docker (the default): the namespace gets its own dockerd (bench/lib/netns-docker.ts: socket and pid
//     file in /run/<ns>, data root /var/lib/<ns>-docker, all removed at the end), and the replicas are pod containers
//     started through the project's Docker driver (DockerRuntime), each publishing its container port 8080 on the
//     node's address with a host port Docker picks, as the agent runs pods. The service's backends are
//     10.232.0.1:<published port>, as Endpoints list them. The proxies get the service as the agent gives it to
//     them, through preferLocalTargets (src/net/local-backends.ts): this node's backends rewritten to each
//     container's own address and port (172.17.0.x:8080). The image (--image):
//       node (the default): a FROM-scratch image of this host's node binary, its shared libraries and loader, and
//         the bench's server (bench/lib/backend-server.ts: 200 with a 22-byte text body, keep-alive on), built
//         with dockerode's buildImage (bench/lib/node-image.ts) and tagged flotilla/bench-node:<node version>;
//       busybox: busybox httpd as the project's tests run it (`httpd -f -p 8080 -h /www`, a 22-byte index.html):
//         no keep-alive, a process forked per connection, so every request is a new connection (and, through
//         nftables, a new NAT decision).
//   --backend process: plain Node processes running the same server on addresses of their own in the namespace
//     (10.232.0.11, .12, ...:8080, on the veth); no Docker, no published ports, nothing rewritten.
//
// Cases, one after the other (never two at once), each with the same wrk settings (`--threads`, default 3, and
// `--connections`, default 30; keep-alive, wrk's default), a warm-up of `--warmup` s that is not counted and then
// `--seconds` s measured with `--latency`:
//   direct     wrk thread i dials replica i mod N where Endpoints list it: with Docker, the published port, so
//              through Docker's own DNAT of it (its nat OUTPUT rule), as a client on the node dialling a pod would.
//              A wrk thread uses one address, so with several replicas a thread's connections all go to one
//              replica, where the proxies spread each thread's connections over all of them (and unevenly: at
//              random, or round-robin across threads); that costs wrk and the replicas CPU and tail latency that
//              is not the proxy's. For a like-for-like comparison with several replicas, give each connection its
//              own thread (`--threads 30 --connections 30`);
//   direct-pod (docker) as direct, to the containers' own addresses: no NAT at all (conntrack is on: Docker's
//              nat rules turn it on in the namespace); it splits direct's cost into Docker's DNAT and the rest;
//   userspace  UserspaceProxy (src/net/userspace-proxy.ts) in its own Node process, the VIP held by
//              DummyInterfaceVips (a dummy interface, or an empty bridge on kernels without one), round-robin per
//              connection: with keep-alive, each connection is given a replica once, when it opens;
//   nftables   NftablesProxy (src/net/nftables-proxy.ts): DNAT of the same VIP in the kernel (random per
//              connection) to the addresses the proxies get (with Docker: the containers' own);
//   nftables-published (docker) NftablesProxy given the Endpoints as they are, without preferLocalTargets: DNAT
//              to the published ports, where Docker's DNAT no longer applies (one NAT binding per connection), so
//              docker-proxy, its userspace relay, carries every byte: what the rewrite saves;
//   direct-ct  as direct, while NftablesProxy's table is loaded: nothing is NATed by it, but its nat chains turn
//              on connection tracking in the namespace, so every packet passes conntrack, as on any node with NAT
//              rules (Docker's among them); it splits the nftables case's cost into conntrack and DNAT (process
//              backend, where it is a default case; with Docker, conntrack is on anyway and it shows what the
//              table's per-packet filter chains cost);
//   ingress    IngressServer (src/net/ingress-server.ts) in its own Node process on 10.232.0.1:80, one rule for
//              host "" and path "/" to the service, round-robin per request over keep-alive backend connections.
// With `--rounds N` the cases run N times in rotation and the table shows medians. A case starts once the
// replicas' TIME_WAIT sockets of the cases before it are gone (only busybox httpd, which closes every connection
// itself, leaves them: up to 60 s); otherwise a SYN of one path landing on a 4-tuple that another path left in
// TIME_WAIT is refused at random (PAWS: its sequence number and timestamp offset depend on the address dialled)
// and waits out a retransmission. Also measured, over the
// middle of each measured window: CPU per request of wrk, the replicas (their processes from /proc, or their
// containers' cgroups) and the proxy (its process; with Docker, plus the docker-proxy processes), how many cores
// our processes and the whole machine kept busy (the machine may be shared), and how the replicas shared the
// requests (busybox httpd cannot count them: then the packets each container received). `--cpu-prof DIR` runs the
// userspace proxy's and the ingress's processes under `node --cpu-prof`, writes the profiles to DIR and prints
// their top functions by self time.
//
// Every phase has a deadline; every process and container is removed, dockerd stopped and its state removed, the
// namespace deleted and the temp dir removed on exit, on errors and on Ctrl-C (a second Ctrl-C skips the orderly
// teardown for a forced one). Child processes also exit when this process goes away (their stdin closes); what a
// killed run left (its namespace, its dockerd and state) is removed by the next run.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { IngressServer } from "../src/net/ingress-server.js";
import { NftablesProxy, nftablesAvailable, runNft } from "../src/net/nftables-proxy.js";
import type { ClusterNetworkView, ServiceView } from "../src/net/types.js";
import { UserspaceProxy } from "../src/net/userspace-proxy.js";
import { DummyInterfaceVips } from "../src/net/vip-addresses.js";
import { startNamespaceDocker, stopNamespaceDockerSync, namespaceDockerPaths, type NamespaceDocker } from "./lib/netns-docker.js";
import { killAll, run, startIn, stopProc, tail, type Proc } from "./lib/procs.js";
import { cpuSeconds, endpointText, startDockerBackends, startProcessBackends, timeWaitInNetns, type Backends, type Cpu, type DockerImageKind, type Endpoint } from "./lib/proxy-backends.js";
import { deadline, median, now, sleep, until } from "./lib/timing.js";

// ------------------------------------------------------------------------------------------------- the layout

/** The node's address, on the namespace's veth. */
const NODE_IP = "10.232.0.1";
const NODE_PREFIX = 24;
/**
 * A second address of the node, the source of its connections to service VIPs (the service route's `src`), so
 * that no connection through a VIP shares its conntrack reply tuple (backend address:port, node address:port) with
 * one that went direct to a published port: a connection that finds its reply tuple still held by another's
 * conntrack entry (TIME_WAIT: 120 s) gets its source port remapped, and then lands on the backend's TIME_WAIT
 * sockets of other connections, where PAWS refuses a share of the SYNs and each waits out a retransmission (1 s).
 * On a node both would use its one address; here, where the cases follow each other on the same backends within
 * seconds, it would make each case pay for the one before (busybox httpd: a new connection per request).
 */
const VIP_CLIENT_IP = "10.232.0.2";
/** The node's name in the service's endpoints (preferLocalTargets rewrites this node's backends). */
const NODE_NAME = "bench";
/** The process backend's replica i's own address (also on the veth): 10.232.0.11, .12, ... */
const replicaIp = (i: number) => `10.232.0.${11 + i}`;
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
/** Up to this many TIME_WAIT sockets (in the namespace and the replicas) left by a case, the next starts at once. */
const LINGER_LIMIT = 200;

const SCRIPT = fileURLToPath(import.meta.url);
const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;

const CASES = ["direct", "direct-pod", "userspace", "nftables", "nftables-published", "direct-ct", "ingress"] as const;
type CaseName = (typeof CASES)[number];
type BackendKind = "docker" | "process";
const DEFAULT_CASES: Record<BackendKind, CaseName[]> = {
  docker: ["direct", "direct-pod", "userspace", "nftables", "nftables-published", "ingress"],
  process: ["direct", "userspace", "nftables", "direct-ct", "ingress"],
};
/** Cases that only one backend has, and why. */
const ONLY: Partial<Record<CaseName, { backend: BackendKind; why: string }>> = {
  "direct-pod": { backend: "docker", why: "a process replica has no address other than its own" },
  "nftables-published": { backend: "docker", why: "only Docker publishes ports" },
};

/** Service bench/web without backends: the backends fill them in. */
const SERVICE: ServiceView = {
  namespace: "bench",
  name: "web",
  clusterIp: VIP,
  ports: [{ name: "", port: VIP_PORT, protocol: "TCP", nodePort: 0, backends: [] }],
  sessionAffinity: "None",
};

const ingressView = (service: ServiceView): ClusterNetworkView => ({
  services: [service],
  ingresses: [{ namespace: service.namespace, name: service.name, rules: [{ host: "", paths: [{ pathPrefix: "/", service: service.name, port: VIP_PORT }] }] }],
});

// ---------------------------------------------------------------------------------------------------- options

const USAGE = `usage: node dist/bench/proxy.js [options]      (root: creates a network namespace, a dockerd and nftables rules)
  --backend KIND     docker (default): pod containers through the Docker driver, on the namespace's own dockerd;
                     process: plain Node processes, no Docker
  --image KIND       with docker: node (default; keep-alive Node server) or busybox (httpd: no keep-alive)
  --seconds S        measured seconds per case (default 10)
  --warmup S         wrk warm-up per case, not counted (default 2)
  --replicas N       replicas of the service (default 1: the issue's "an httpd pod"; see the direct case)
  --threads N        wrk threads (default 3: the direct cases give thread i replica i mod --replicas)
  --connections N    wrk connections, spread over the threads (default 30)
  --rounds N         run the cases N times in rotation; the table shows medians (default 1)
  --cases LIST       among ${CASES.join(",")}; by default
                     docker: ${DEFAULT_CASES.docker.join(",")}
                     process: ${DEFAULT_CASES.process.join(",")}
                     (direct-pod and nftables-published need docker; ratios need direct)
  --cpu-prof DIR     run the userspace proxy and the ingress under node --cpu-prof, profiles to DIR
  --wrk BIN          the wrk binary (default wrk, from PATH; Debian: apt-get install -y wrk)
  --keep-logs        keep the children's and dockerd's logs (in the OS temp dir)`;

/** A problem with how the bench was started or what the machine lacks: reported without a stack trace. */
class SetupError extends Error {}

interface Options {
  backend: BackendKind;
  replicas: number;
  image: DockerImageKind;
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
      backend: { type: "string", default: "docker" },
      image: { type: "string" },
      replicas: { type: "string", default: "1" },
      seconds: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      threads: { type: "string", default: "3" },
      connections: { type: "string", default: "30" },
      rounds: { type: "string", default: "1" },
      cases: { type: "string" },
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
  const backend = values.backend;
  if (backend !== "docker" && backend !== "process") throw new SetupError(`--backend: "${backend}" is not docker or process`);
  const image = values.image ?? "node";
  if (image !== "node" && image !== "busybox") throw new SetupError(`--image: "${image}" is not node or busybox`);
  if (backend === "process" && values.image !== undefined) throw new SetupError("--image is for --backend docker (the process backend runs the node server as a plain process)");
  const cases = (values.cases ?? DEFAULT_CASES[backend].join(",")).split(",").map((c) => c.trim()).filter((c) => c !== "");
  for (const c of cases) {
    if (!(CASES as readonly string[]).includes(c)) throw new SetupError(`--cases: "${c}" is not one of ${CASES.join(", ")}`);
    const only = ONLY[c as CaseName];
    if (only && only.backend !== backend) throw new SetupError(`--cases: ${c} is only for --backend ${only.backend} (${only.why})`);
  }
  const threads = int("threads", values.threads, 1);
  const connections = int("connections", values.connections, 1);
  if (connections < threads) throw new SetupError("--connections must be at least --threads (wrk gives each thread connections / threads)");
  return {
    backend,
    image,
    replicas: int("replicas", values.replicas, 1),
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

// ------------------------------------------------------------------------------------------------- namespace

/** Whether `pid` runs (a zombie, killed and not yet reaped, does not). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

/** Deletes namespaces, dockerds and their state that an earlier run of this bench left when it was killed. */
function removeStaleNamespaces(log: (line: string) => void): void {
  const names = new Set<string>();
  const list = (dir: string, re: RegExp) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir)) {
      const m = re.exec(entry);
      if (m) names.add(m[1]!);
    }
  };
  list("/run/netns", new RegExp(`^(${NETNS_PREFIX}\\d+)$`));
  list("/run", new RegExp(`^(${NETNS_PREFIX}\\d+)$`));
  list("/var/lib", new RegExp(`^(${NETNS_PREFIX}\\d+)-docker$`));
  for (const name of names) {
    const pid = name.slice(NETNS_PREFIX.length);
    if (running(Number(pid))) continue;
    log(`removing ${name}, left by an earlier run (pid ${pid} is gone)`);
    stopNamespaceDockerSync(name, log);
    if (existsSync(`/run/netns/${name}`)) spawnSync("ip", ["netns", "del", name], { timeout: 10_000 });
  }
}

function createNamespace(netns: string, replicaAddresses: string[]): void {
  run("ip", ["netns", "add", netns]);
  const ip = (...args: string[]) => run("ip", ["-n", netns, ...args]);
  ip("link", "set", "lo", "up");
  ip("link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER);
  ip("addr", "add", `${NODE_IP}/${NODE_PREFIX}`, "dev", VETH);
  ip("addr", "add", `${VIP_CLIENT_IP}/32`, "dev", VETH);
  for (const a of replicaAddresses) ip("addr", "add", `${a}/32`, "dev", VETH);
  ip("link", "set", VETH, "up");
  ip("link", "set", VETH_PEER, "up");
  ip("route", "add", SERVICE_RANGE, "dev", VETH, "src", VIP_CLIENT_IP);
}

// ------------------------------------------------------------------------------------------------ measurement

const addCpu = (a: Cpu, b: Cpu) => ({ user: a.user + b.user, sys: a.sys + b.sys });
const subCpu = (a: Cpu, b: Cpu) => ({ user: a.user - b.user, sys: a.sys - b.sys });
const totalCpu = (a: Cpu) => a.user + a.sys;


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
  /**
   * Per replica over the measured run: requests served and connections accepted (NaN when the server cannot
   * count them), and packets its container received (NaN for a process).
   */
  perReplica: { requests: number; connections: number; packets: number }[];
}

interface Bench {
  netns: string;
  dir: string;
  options: Options;
  backends: Backends;
  /** The .cpuprofile files this run asked for (--cpu-prof). */
  profiles: string[];
  log: (line: string) => void;
}

/** The wrk script of the direct cases: thread i dials `targets[i mod N]` (each wrk thread uses one address). */
function spreadScript(targets: Endpoint[]): string {
  const list = targets.map((t) => `{ "${t.address}", "${t.port}" }`).join(", ");
  return `-- Written by bench/proxy.ts: wrk thread i connects to replica i mod ${targets.length}.
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
async function startChild(b: { netns: string; dir: string; options: Options; profiles: string[] }, name: string, role: string, args: string[], profile?: string, readyMs = 20_000): Promise<Proc> {
  const node: string[] = [];
  if (profile !== undefined && b.options.cpuProf !== undefined) {
    mkdirSync(b.options.cpuProf, { recursive: true });
    rmSync(join(b.options.cpuProf, profile), { force: true });
    b.profiles.push(join(b.options.cpuProf, profile));
    node.push("--cpu-prof", "--cpu-prof-dir", b.options.cpuProf, "--cpu-prof-name", profile);
  }
  const p = startIn(b.netns, b.dir, name, process.execPath, [...node, SCRIPT, "__child", role, ...args]);
  try {
    await p.nextLine(/^ready\b/, readyMs, `${name} to be ready`);
  } catch (err) {
    p.child.kill("SIGKILL");
    throw err;
  }
  return p;
}

/** NftablesProxy in the namespace, synced with `service`: its table `ip flotilla` is loaded when this resolves. */
async function loadNftables(b: Bench, service: ServiceView): Promise<NftablesProxy> {
  const nft = new NftablesProxy({ netns: b.netns, log: { info: () => {}, warn: (obj, msg) => b.log(`nftables: ${msg} ${JSON.stringify(obj)}`) } });
  try {
    await deadline("nftables sync", 30_000, nft.sync([service]));
  } catch (err) {
    await nft.close().catch(() => {});
    throw err;
  }
  return nft;
}

/** One case: set up its path, warm up, measure, tear down. */
async function runCase(b: Bench, name: CaseName, round: number): Promise<CaseResult> {
  const { options, backends } = b;
  const replicas = backends.replicas;
  let url = `http://${VIP}:${VIP_PORT}/`;
  let script: string | undefined;
  let proxy: Proc | undefined;
  let nft: NftablesProxy | undefined;
  const suffix = options.rounds > 1 ? `-round${round + 1}` : "";
  // A case that opens a connection per request (busybox httpd closes every one) leaves thousands of sockets in
  // TIME_WAIT for 60 s, in the replicas (the side that closed) and in the namespace (the proxies' sockets). The
  // next case would pay for them: connect() searches longer for a free port, and a SYN that lands on a backend's
  // TIME_WAIT socket left by another path is refused at random (PAWS: a client's ISN and timestamp offset depend on
  // the address it dialled) and waits out a retransmission. Such a case's successor starts once they are gone;
  // keep-alive cases leave a few dozen and nobody waits for those.
  const lingering = () => timeWaitInNetns(b.netns) + replicas.reduce((sum, r) => sum + (Number.isFinite(r.timeWait()) ? r.timeWait() : 0), 0);
  if (lingering() > LINGER_LIMIT) {
    const since = now();
    const count = lingering();
    await until("the TIME_WAIT sockets of earlier cases to expire", 90_000, async () => (lingering() === 0 ? true : undefined), 500).catch((err: unknown) => b.log(`${name}: ${String(err)}; starting anyway`));
    b.log(`${name}: waited ${((now() - since) / 1000).toFixed(0)} s for the ${count} TIME_WAIT sockets of earlier cases to expire`);
  }
  const direct = (targets: Endpoint[]) => {
    url = `http://${endpointText(targets[0]!)}/`;
    script = join(b.dir, `spread-${name}.lua`);
    writeFileSync(script, spreadScript(targets));
  };
  try {
    switch (name) {
      case "direct":
      case "direct-ct":
        direct(replicas.map((r) => r.published));
        if (name === "direct-ct") nft = await loadNftables(b, backends.local);
        break;
      case "direct-pod":
        direct(replicas.map((r) => r.own));
        break;
      case "userspace":
        proxy = await startChild(b, `userspace${suffix}`, "userspace", [b.netns, JSON.stringify(backends.local)], `userspace${suffix}.cpuprofile`);
        break;
      case "nftables":
        nft = await loadNftables(b, backends.local);
        break;
      case "nftables-published":
        nft = await loadNftables(b, backends.published);
        break;
      case "ingress":
        url = `http://${NODE_IP}:${INGRESS_PORT}/`;
        proxy = await startChild(b, `ingress${suffix}`, "ingress", [NODE_IP, String(INGRESS_PORT), JSON.stringify(ingressView(backends.local))], `ingress${suffix}.cpuprofile`);
        break;
    }
    if (options.warmup > 0) {
      const warm = parseWrk(await runWrk(b, `wrk-${name}${suffix}-warmup`, url, options.warmup, false, script));
      if (warm.requests === 0 || warm.errors > 0) throw new Error(`${name}: the warm-up failed: ${warm.requests} requests, ${warm.errorText}`);
    }
    const count = () => Promise.all(replicas.map(async (r) => ({ served: await r.served(), packets: r.packets() })));
    const before = await count();
    const proxyPids = [proxy?.pid, ...backends.relayPids].filter((p) => p !== undefined);
    let window: { seconds: number; wrk: Cpu; replicas: Cpu; proxy: Cpu; machine: number } | undefined;
    const sample = async (wrk: Proc) => {
      // The middle of the run: after wrk has connected, before it stops.
      const edge = Math.min(0.5, options.seconds / 4);
      await sleep(edge * 1000);
      const take = () => ({
        t: now(),
        wrk: cpuSeconds(wrk.pid, CLOCK_TICKS),
        replicas: replicas.reduce((sum, r) => addCpu(sum, r.cpu()), { user: 0, sys: 0 }),
        proxy: proxyPids.reduce((sum, pid) => addCpu(sum, cpuSeconds(pid, CLOCK_TICKS)), { user: 0, sys: 0 }),
        machine: machineCpu().busy,
      });
      const t0 = take();
      await sleep((options.seconds - 2 * edge) * 1000);
      const t1 = take();
      window = { seconds: (t1.t - t0.t) / 1000, wrk: subCpu(t1.wrk, t0.wrk), replicas: subCpu(t1.replicas, t0.replicas), proxy: subCpu(t1.proxy, t0.proxy), machine: t1.machine - t0.machine };
    };
    const result = parseWrk(await runWrk(b, `wrk-${name}${suffix}`, url, options.seconds, true, script, sample));
    const after = await count();
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
      perReplica: after.map((a, i) => {
        const was = before[i]!;
        return {
          requests: a.served && was.served ? a.served.requests - was.served.requests : NaN,
          connections: a.served && was.served ? a.served.connections - was.served.connections : NaN,
          packets: a.packets - was.packets,
        };
      }),
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

function paths(b: { backends: Backends; options: Options }): Record<CaseName, string> {
  const docker = b.backends.kind === "docker";
  const n = b.backends.replicas.length;
  const proxied = docker ? "container (its own address)" : "replica";
  return {
    direct: docker ? `wrk → ${NODE_IP}:<published port> (thread i → replica i mod ${n}), DNAT by Docker → container` : `wrk → replicas (thread i → replica i mod ${n})`,
    "direct-pod": `wrk → containers' own addresses (thread i → replica i mod ${n}), no NAT`,
    "direct-ct": docker
      ? "as direct, with NftablesProxy's table loaded (conntrack is on anyway; its chains see every packet, none of this traffic is its)"
      : "as direct, with NftablesProxy's table loaded (conntrack on, no NAT for this traffic)",
    userspace: `wrk → ${VIP}:${VIP_PORT} → UserspaceProxy (Node) → ${proxied}`,
    nftables: `wrk → ${VIP}:${VIP_PORT}, DNAT by NftablesProxy's rules → ${proxied}`,
    "nftables-published": `wrk → ${VIP}:${VIP_PORT}, DNAT by NftablesProxy's rules → ${NODE_IP}:<published port> → docker-proxy (userspace) → container`,
    ingress: `wrk → ${NODE_IP}:${INGRESS_PORT} → IngressServer (Node, HTTP) → ${proxied}`,
  };
}

/** Cases whose traffic passes a process that we count as the proxy. */
const PROXIED: CaseName[] = ["userspace", "ingress", "nftables-published"];

interface Summary {
  name: CaseName;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  cpu: { wrk: number; replicas: number; proxy: number; proxyUser: number; kernelShare: number };
  cores: { ours: number; machine: number };
  /** Each replica's share (%) of the requests, or of the packets received when requests were not counted. */
  share: number[];
  shareOf: "requests" | "packets";
  connections: number[];
}

function summarize(name: CaseName, runs: CaseResult[]): Summary {
  const med = (f: (r: CaseResult) => number) => median(runs.map(f));
  const n = runs[0]!.perReplica.length;
  const counted = runs.every((r) => r.perReplica.every((p) => Number.isFinite(p.requests)));
  const of = (p: CaseResult["perReplica"][number]) => (counted ? p.requests : p.packets);
  const totals = Array.from({ length: n }, (_, i) => runs.reduce((s, r) => s + of(r.perReplica[i]!), 0));
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
    shareOf: counted ? "requests" : "packets",
    connections: Array.from({ length: n }, (_, i) => median(runs.map((r) => r.perReplica[i]!.connections))),
  };
}

const allCpu = (s: Summary) => s.cpu.wrk + s.cpu.replicas + s.cpu.proxy;

function report(b: { backends: Backends; options: Options }, results: CaseResult[], skipped: Map<CaseName, string>, header: string[]): string {
  const { options } = b;
  const roundDirect = (round: number) => results.find((r) => r.name === "direct" && r.round === round)?.wrk.rps;
  const lines = [...header, ""];
  const summaries = options.cases.filter((c) => !skipped.has(c) && results.some((r) => r.name === c)).map((c) => summarize(c, results.filter((r) => r.name === c)));
  const direct = summaries.find((s) => s.name === "direct");
  const ratio = (v: number, base: number | undefined) => (base === undefined ? "-" : fmt(v / base, 2));
  const of = options.rounds > 1 ? `medians of ${options.rounds} rounds, ` : "";
  const keepAlive = b.backends.kind === "docker" && options.image === "busybox" ? "busybox httpd: a new connection per request" : "keep-alive";
  lines.push(`HTTP GET of a 22-byte body, wrk ${options.threads} threads, ${options.connections} connections (${keepAlive}), ${options.seconds} s per case after ${options.warmup} s of warm-up, ${of}ratios to direct:`, "");
  lines.push(table(
    ["case", "requests/s", "p50 ms", "p99 ms", "req/s ÷ direct", "p50 ÷ direct", "p99 ÷ direct", "errors"],
    [
      ...summaries.map((s) => [s.name, fmt(s.rps, 0), fmt(s.p50, 2), fmt(s.p99, 2), ratio(s.rps, direct?.rps), ratio(s.p50, direct?.p50), ratio(s.p99, direct?.p99), String(s.errors)]),
      ...[...skipped].map(([c, why]) => [c, "-", "-", "-", "-", "-", "-", `skipped: ${why}`]),
    ],
    [false, true, true, true, true, true, true, false],
  ));
  const p = paths(b);
  lines.push("", "Paths:", ...summaries.map((s) => `- ${s.name}: ${p[s.name]}`));
  const docker = b.backends.kind === "docker";
  const shareOf = summaries[0]?.shareOf ?? "requests";
  lines.push(
    "",
    `CPU per request in the middle of the measured window (µs, user + system; replicas from ${docker ? "their containers' cgroups" : "/proc"}; the proxy's process${docker ? " and docker-proxy's" : ""}, its user part in brackets), the share of it in the kernel, cores busy, and the replicas' share${shareOf === "packets" ? " of the packets they received (their server cannot count requests)" : ""}:`,
    "",
  );
  lines.push(table(
    ["case", "wrk µs/req", "replicas µs/req", "proxy µs/req", "all µs/req", "all ÷ direct", "in kernel", "cores: ours", "cores: machine", `${shareOf} per replica %`, "connections per replica"],
    summaries.map((s) => [
      s.name,
      fmt(s.cpu.wrk, 1),
      fmt(s.cpu.replicas, 1),
      PROXIED.includes(s.name) ? `${fmt(s.cpu.proxy, 1)} (${fmt(s.cpu.proxyUser, 1)})` : "-",
      fmt(allCpu(s), 1),
      direct ? fmt(allCpu(s) / allCpu(direct), 2) : "-",
      `${fmt(100 * s.cpu.kernelShare, 0)}%`,
      fmt(s.cores.ours, 2),
      fmt(s.cores.machine, 2),
      s.share.map((x) => x.toFixed(0)).join(" / "),
      s.connections.every(Number.isFinite) ? s.connections.map((x) => String(x)).join(" / ") : "-",
    ]),
    [false, true, true, true, true, true, true, true, true, true, true],
  ));
  if (options.rounds > 1) {
    lines.push("", "Every round (requests/s ÷ direct of the same round):", "");
    lines.push(table(
      ["round", "case", "requests/s", "÷ direct", "p50 ms", "p99 ms", "errors", "cores: machine"],
      results.map((r) => [String(r.round + 1), r.name, fmt(r.wrk.rps, 0), fmt(r.wrk.rps / (roundDirect(r.round) ?? NaN), 2), fmt(r.wrk.p50, 2), fmt(r.wrk.p99, 2), String(r.wrk.errors), fmt(r.cores.machine, 2)]),
      [true, false, true, true, true, true, true, true],
    ));
  }
  const aims: string[] = [];
  const find = (name: CaseName) => summaries.find((s) => s.name === name);
  const perRound = (name: CaseName) =>
    options.rounds > 1 && direct ? ` (per round: ${results.filter((r) => r.name === name).map((r) => fmt(r.wrk.rps / (roundDirect(r.round) ?? NaN), 2)).join(", ")})` : "";
  const nft = find("nftables");
  const user = find("userspace");
  if (direct && nft) aims.push(`nftables within 5% of direct: ${nft.rps / direct.rps >= 0.95 ? "met" : "NOT met"} (${fmt(nft.rps / direct.rps, 3)} of direct's requests/s${perRound("nftables")})`);
  if (direct && user) aims.push(`userspace at least half of direct: ${user.rps / direct.rps >= 0.5 ? "met" : "NOT met"} (${fmt(user.rps / direct.rps, 3)}${perRound("userspace")})`);
  const ct = find("direct-ct");
  if (direct && nft && ct && b.backends.kind === "process") aims.push(`of nftables' cost, conntrack alone (direct-ct) leaves ${fmt(ct.rps / direct.rps, 2)} of direct's requests/s and DNAT on top ${fmt(nft.rps / ct.rps, 2)} of direct-ct's`);
  if (direct && nft && ct && b.backends.kind === "docker") aims.push(`with NftablesProxy's table loaded but not on its path, direct (direct-ct) keeps ${fmt(ct.rps / direct.rps, 2)} of its requests/s; nftables gets ${fmt(nft.rps / ct.rps, 2)} of direct-ct's`);
  const published = find("nftables-published");
  if (direct && nft && published) aims.push(`without preferLocalTargets (nftables-published, through docker-proxy) nftables gets ${fmt(published.rps / direct.rps, 2)} of direct's requests/s, with it ${fmt(nft.rps / direct.rps, 2)}`);
  const pod = find("direct-pod");
  if (direct && pod) aims.push(`the containers dialled without any NAT (direct-pod) give ${fmt(pod.rps / direct.rps, 2)} of direct's requests/s`);
  if (aims.length > 0) lines.push("", `Aims: ${aims.join("; ")}.`);
  const errors = results.filter((r) => r.wrk.errors > 0);
  if (errors.length > 0) lines.push("", "wrk errors:", ...errors.map((r) => `- ${r.name} round ${r.round + 1}: ${r.wrk.errorText}`));
  return lines.join("\n");
}

// ------------------------------------------------------------------------------------------------ children

/** GET `url` on a fresh connection: true on a 200. */
function answers(url: string): Promise<true | undefined> {
  return new Promise((resolveGet) => {
    const req = get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolveGet(res.statusCode === 200 ? true : undefined);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolveGet(undefined));
  });
}

/** `__child <role> ...`: this file as the userspace proxy, the ingress or a readiness probe, inside the namespace. */
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
    case "probe": {
      // Every URL must answer 200 once (each on a new connection); then "ready", and exit.
      for (const url of args) await until(`${url} to answer`, 30_000, () => answers(url), 100);
      say(`ready ${args.length} URLs answered`);
      process.exit(0);
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

/** Set once a signal asked us to stop: main's own failure (its children killed) is then not reported as one. */
let signalled = false;

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  const loadAtStart = loadavg();
  if (process.getuid?.() !== 0) throw new SetupError("needs root: it creates a network namespace, a dockerd and nftables rules (sudo npm run -s bench:proxy)");
  const wrk = wrkVersion(options.wrk);
  const nftVersion = (() => {
    try {
      return run("nft", ["--version"]).trim().split(" (")[0]!;
    } catch {
      return "nft not found";
    }
  })();
  if (options.backend === "docker" && spawnSync("dockerd", ["--version"]).error) throw new SetupError("dockerd not found: install Docker (Debian: apt-get install -y docker.io), or use --backend process");
  if (options.threads % options.replicas !== 0) log(`note: --threads ${options.threads} is not a multiple of --replicas ${options.replicas}: the direct cases spread connections over the replicas unevenly`);
  const replicaIps = Array.from({ length: options.replicas }, (_, i) => replicaIp(i));

  const netns = `${NETNS_PREFIX}${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), "flotilla-bench-proxy-"));
  let namespaceMade = false;
  let dockerStarted = false;
  let nsDocker: NamespaceDocker | undefined;
  let cleaned = false;
  // The last resort, synchronous (process exit, a second Ctrl-C): every step bounded, idempotent.
  const cleanupSync = () => {
    if (cleaned) return;
    cleaned = true;
    killAll();
    if (dockerStarted) stopNamespaceDockerSync(netns, log, nsDocker?.pid);
    if (namespaceMade) spawnSync("ip", ["netns", "del", netns], { timeout: 10_000 });
    if (options.keepLogs) process.stderr.write(`logs kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
  let teardown: Promise<void> | undefined;
  // The orderly way: children killed, containers removed and dockerd stopped through its API, then the rest.
  const cleanup = () =>
    (teardown ??= (async () => {
      killAll();
      if (nsDocker) await deadline("stopping dockerd", 90_000, nsDocker.stop()).catch((err: unknown) => log(`stopping dockerd: ${String(err)}`));
      cleanupSync();
    })());
  process.on("exit", cleanupSync);
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      process.stderr.write(`\n${signal} again: forced cleanup\n`);
      cleanupSync();
      process.exit(130);
    }
    signalled = true;
    process.stderr.write(`\n${signal}: stopping, cleaning up (again to force)\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);

  const script = relative(process.cwd(), process.argv[1] ?? "") || process.argv[1];
  const header = [
    `- **Command:** \`node ${script} ${process.argv.slice(2).join(" ")}\``.replace(/ `$/, "`"),
    `- **Date:** ${new Date().toISOString().replace("T", " ").slice(0, 16)} UTC`,
    `- **Machine:** ${machine(wrk, nftVersion, loadAtStart)}`,
  ];
  log(header.join("\n"));

  try {
    removeStaleNamespaces(log);
    namespaceMade = true;
    createNamespace(netns, options.backend === "process" ? replicaIps : []);
    log(`namespace ${netns}: ${NODE_IP}/${NODE_PREFIX} and ${VIP_CLIENT_IP} on ${VETH}, route ${SERVICE_RANGE} via ${VETH} from ${VIP_CLIENT_IP}`);
    const context = { netns, dir, nodeName: NODE_NAME, nodeAddress: NODE_IP, service: SERVICE, log };
    let backends: Backends;
    if (options.backend === "docker") {
      dockerStarted = true;
      log(`starting dockerd in ${netns} (data root ${namespaceDockerPaths(netns).dataRoot})`);
      nsDocker = await startNamespaceDocker(netns, join(dir, "dockerd.log"), log);
      log(`dockerd ${nsDocker.version} answers (pid ${nsDocker.pid}); starting the replicas (--image ${options.image})`);
      const probeCtx = { netns, dir, options, profiles: [] as string[] };
      backends = await startDockerBackends(context, nsDocker, {
        image: options.image,
        replicas: options.replicas,
        clockTicks: CLOCK_TICKS,
        probe: async (urls) => {
          const p = await startChild(probeCtx, "probe", "probe", urls, undefined, 45_000);
          await deadline("the probe to exit", 10_000, p.exited);
        },
      });
    } else {
      backends = await startProcessBackends(context, replicaIps, CLOCK_TICKS);
    }
    header.push(`- **Setup:** network namespace ${netns} (made and deleted by the run); ${backends.describe}; service ${SERVICE.namespace}/${SERVICE.name} on ${VIP}:${VIP_PORT}; the cases one after the other.`);
    log(header[header.length - 1]!);
    const bench: Bench = { netns, dir, options, backends, profiles: [], log };

    const results: CaseResult[] = [];
    const skipped = new Map<CaseName, string>();
    const p = paths(bench);
    for (let round = 0; round < options.rounds; round++) {
      for (const name of options.cases) {
        if (skipped.has(name)) continue;
        if (name.startsWith("nftables") || name === "direct-ct") {
          const available = await deadline("nftables availability check", 30_000, nftablesAvailable({ netns }));
          if (!available.ok) {
            for (const c of ["nftables", "nftables-published", "direct-ct"] as const) if (options.cases.includes(c)) skipped.set(c, available.reason);
            log(`nftables: skipped: ${available.reason}`);
            continue;
          }
        }
        log(`${name}${options.rounds > 1 ? ` (round ${round + 1})` : ""}: ${p[name]}`);
        const r = await deadline(`${name}`, (options.warmup + options.seconds) * 1000 + 240_000, runCase(bench, name, round));
        const perReplica = r.perReplica.map((x) => (Number.isFinite(x.requests) ? x.requests : `${x.packets} packets`)).join(" / ");
        log(`${name}: ${r.wrk.rps.toFixed(0)} requests/s, p50 ${r.wrk.p50.toFixed(2)} ms, p99 ${r.wrk.p99.toFixed(2)} ms, ${r.wrk.errors} errors; CPU µs/request wrk ${r.cpu.wrk.toFixed(1)}, replicas ${r.cpu.replicas.toFixed(1)}, proxy ${r.cpu.proxy.toFixed(1)}; cores ours ${r.cores.ours.toFixed(2)}, machine ${r.cores.machine.toFixed(2)}; per replica ${perReplica}`);
        results.push(r);
      }
    }
    await deadline("stopping the replicas", 60_000, backends.stop());
    // Nothing of ours may be left in the namespace's nftables (NftablesProxy.close deletes its table).
    const left = await runNft(["list", "tables"], { netns }).catch(() => "");
    if (/flotilla/.test(left)) log(`warning: nft tables left in ${netns}: ${left.trim()}`);

    process.stdout.write(`${report(bench, results, skipped, header)}\n`);
    const profiles = bench.profiles.filter((f) => existsSync(f));
    if (profiles.length > 0) process.stdout.write(`\nCPU profiles (node --cpu-prof), top items by self time:\n${profiles.map((f) => summarizeProfile(f)).join("\n")}\n`);
  } finally {
    await cleanup();
  }
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
      if (signalled) return; // the signal handler exits once the cleanup is done
      const plain = e instanceof SetupError || String((e as NodeJS.ErrnoException).code).startsWith("ERR_PARSE_ARGS");
      process.stderr.write(`bench/proxy: ${e instanceof Error ? (plain ? e.message : (e.stack ?? e.message)) : String(e)}\n`);
      if (plain) process.stderr.write(`${USAGE}\n`);
      process.exit(1);
    });
}
