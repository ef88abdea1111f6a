// Services across two nodes, each in its own network namespace with its own address, with real processes: a master
// in namespace M on a bridge (10.233.0.1), agents in A (10.233.0.2) and B (10.233.0.3) with the process driver, the
// real CLI. A VIP (from 10.96.0.0/16, which exists only inside these namespaces) answers on node A and spreads over
// pods on A and on B; the same through A's NodePort from B. First with A's userspace proxy (the VIP held on A's
// flotilla0 interface), then with A restarted in nftables mode: DNAT rules for the VIP in A's table, and no
// listener on the VIP.
//
// Needs root and `ip netns`: skipped otherwise, but under CI=true it fails loudly instead.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { netnsAvailable } from "../../src/store/linearizability/netns.js";
import { eventually } from "../support/master.js";
import { CLI, requireBuild } from "../support/processes.js";

const inCi = process.env.CI === "true";
const PREFIX = `flsvc${process.pid}`;
const NS = { m: `${PREFIX}m`, a: `${PREFIX}a`, b: `${PREFIX}b` };
const MASTER = "10.233.0.1";
const NODE_A = "10.233.0.2";
const NODE_B = "10.233.0.3";

function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
}

/** Runs a command inside a namespace to completion. */
function inNs(ns: string, cmd: string, args: string[], input?: string) {
  const r = spawnSync("nsenter", [`--net=/run/netns/${ns}`, cmd, ...args], { encoding: "utf8", input, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** A long-running process inside a namespace; resolves once a line matches `ready`. */
function daemonInNs(ns: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn("nsenter", [`--net=/run/netns/${ns}`, process.execPath, CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const seen: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${ready}: ${seen.slice(-5).join(" | ")}`)), 60_000);
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        seen.push(line);
        if (ready.test(line)) {
          clearTimeout(timer);
          resolve(child);
        }
      });
    }
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ${ready}: ${seen.slice(-5).join(" | ")}`));
    });
  });
}

/** n HTTP requests from inside `ns`, each on a new connection; the bodies that answered, with counts. */
function requestsFrom(ns: string, url: string, n: number): Map<string, number> {
  const script = `
    const http = require("http"); const seen = {}; let left = ${n};
    const one = () => http.get(${JSON.stringify(url)}, { agent: false, timeout: 3000 }, (res) => {
      let b = ""; res.on("data", (c) => (b += c)); res.on("end", () => { seen[b] = (seen[b] || 0) + 1; if (--left) one(); else console.log(JSON.stringify(seen)); });
    }).on("error", (e) => { console.error(e.message); process.exit(1); });
    one();`;
  const r = inNs(ns, process.execPath, ["-e", script]);
  if (r.code !== 0) throw new Error(`requests to ${url} from ${ns} failed: ${r.stderr.trim()}`);
  return new Map(Object.entries(JSON.parse(r.stdout) as Record<string, number>));
}

describe.skipIf(!netnsAvailable() && !inCi)("services across two nodes in their own network namespaces", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-svc-netns-"));
  const children: ChildProcess[] = [];
  let config = "";
  afterAll(async () => {
    for (const c of children) c.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    // Pods are processes in the agents' namespaces; killing every process there leaves nothing behind.
    for (const ns of Object.values(NS)) {
      spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).forEach((pid) => spawnSync("kill", ["-9", pid]));
      spawnSync("ip", ["netns", "del", ns]);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) => inNs(NS.m, process.execPath, [CLI, "--config", config, ...args]);
  const agentArgs = (name: string, address: string, mode: string) => [
    "agent", "--server", `${MASTER}:7443`, "--token", joinToken, "--driver", "process", "--address", address, "--name", name,
    "--data", join(dir, name), "--proxy-mode", mode, "--dns-listen", "off",
  ];
  let joinToken = "";
  let agentA: ChildProcess | undefined;

  it("spreads a VIP on node A over pods on A and B, through A's userspace proxy and its NodePort", async () => {
    requireBuild();
    if (!netnsAvailable()) throw new Error("this test needs root and `ip netns` (CI has both)");
    for (const ns of Object.values(NS)) ip("netns", "add", ns);
    ip("-n", NS.m, "link", "add", "br0", "type", "bridge");
    ip("-n", NS.m, "addr", "add", `${MASTER}/24`, "dev", "br0");
    for (const ns of Object.values(NS)) ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", NS.m, "link", "set", "br0", "up");
    for (const [ns, address, port] of [[NS.a, NODE_A, "va"], [NS.b, NODE_B, "vb"]] as const) {
      ip("-n", NS.m, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
      ip("-n", NS.m, "link", "set", port, "master", "br0", "up");
      ip("-n", ns, "addr", "add", `${address}/24`, "dev", "eth0");
      ip("-n", ns, "link", "set", "eth0", "up");
      // VIPs are local to a node: a route for the service range lets a node's own processes send to them.
      ip("-n", ns, "route", "add", "default", "via", MASTER);
    }

    children.push(await daemonInNs(NS.m, ["master", "--listen", `${MASTER}:7443`, "--data", join(dir, "master"), "--service-cidr", "10.96.0.0/16"], /master listening/));
    config = join(dir, "flotilla.yaml");
    writeFileSync(config, `servers: ["${MASTER}:7443"]\ntoken: ${readFileSync(join(dir, "master", "admin.token"), "utf8").trim()}\n`);
    joinToken = cli("token", "create").stdout.trim().split("\n").pop()!.trim();
    agentA = await daemonInNs(NS.a, agentArgs("node-a", NODE_A, "userspace"), /joined/);
    children.push(agentA);
    children.push(await daemonInNs(NS.b, agentArgs("node-b", NODE_B, "userspace"), /joined/));

    writeFileSync(join(dir, "web.yaml"), `apiVersion: flotilla.io/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        command: [node, -e, "require('http').createServer((q,s)=>s.end(process.env.FLOTILLA_POD_NAME)).listen(+process.env.PORT, process.env.HOST)"]
        ports: [{name: http, containerPort: 8080}]
        resources: {requests: {cpu: 100m}}
`);
    // Both nodes Ready first, so the scheduler (spreading by allocated CPU) can use both.
    await eventually(() => cli("get", "nodes").stdout.split("\n").filter((l) => /^node-[ab]\s+Ready\b/.test(l)).length === 2, 30_000, "both nodes Ready");
    expect(cli("apply", "-f", join(dir, "web.yaml")).stderr).toBe("");
    const exposed = cli("expose", "deployment/web", "--port", "80", "--target-port", "http", "--type", "NodePort");
    expect(exposed.stderr).toBe("");
    const [, vip, nodePort] = /exposed on (10\.96\.\d+\.\d+):80 nodePort (\d+)/.exec(exposed.stdout) ?? [];
    expect(vip).toBeDefined();

    // Which node each pod runs on, once all four are running.
    const podsByNode = await eventually(() => {
      const table = cli("get", "pods", "-o", "wide").stdout;
      const rows = table.split("\n").filter((l) => l.startsWith("web-") && /\bRunning\b/.test(l));
      if (rows.length !== 4) return undefined;
      const byNode = new Map<string, string[]>();
      for (const row of rows) {
        const cells = row.split(/\s+/);
        const node = cells.find((c) => c === "node-a" || c === "node-b")!;
        byNode.set(node, [...(byNode.get(node) ?? []), cells[0]!]);
      }
      return byNode.size === 2 ? byNode : undefined;
    }, 60_000, "4 pods running, on both nodes");

    const everyPod = [...podsByNode.values()].flat().sort();
    const viaVip = await eventually(() => {
      const seen = requestsFrom(NS.a, `http://${vip}/`, 40);
      return seen.size === 4 ? seen : undefined;
    }, 30_000, "every pod, on both nodes, to answer through the VIP on node A");
    expect([...viaVip.keys()].sort()).toEqual(everyPod);
    // A's proxy holds the VIP on its flotilla0 interface (a bridge where the kernel has no dummy driver).
    expect(inNs(NS.a, "ip", ["-o", "addr", "show", "dev", "flotilla0"]).stdout).toContain(`${vip}/32`);
    // The NodePort on A's address, from node B.
    const viaNodePort = requestsFrom(NS.b, `http://${NODE_A}:${nodePort}/`, 40);
    expect([...viaNodePort.keys()].sort()).toEqual(everyPod);
  }, 180_000);

  it("does the same with node A's nftables proxy: DNAT rules for the VIP, no listener on it", async () => {
    expect(agentA, "the first test set the cluster up").toBeDefined();
    agentA!.kill("SIGTERM");
    await new Promise<void>((resolve) => agentA!.once("exit", () => resolve()));
    agentA = await daemonInNs(NS.a, agentArgs("node-a", NODE_A, "nftables"), /joined/);
    children.push(agentA);
    const vip = /web\s+NodePort\s+(10\.96\.\d+\.\d+)/.exec(cli("get", "services").stdout)?.[1];
    expect(vip).toBeDefined();
    const rules = await eventually(() => {
      const r = inNs(NS.a, "nft", ["list", "table", "ip", "flotilla"]);
      return r.code === 0 && r.stdout.includes(vip!) ? r.stdout : undefined;
    }, 30_000, "the VIP in A's nftables table");
    expect(rules).toMatch(/dnat to/);
    expect(inNs(NS.a, "ss", ["-Hltn"]).stdout).not.toContain(`${vip}:80`);
    const everyPod = cli("get", "pods").stdout.split("\n").filter((l) => l.startsWith("web-")).map((l) => l.split(/\s+/)[0]!).sort();
    const viaVip = await eventually(() => {
      const seen = requestsFrom(NS.a, `http://${vip}/`, 40);
      return seen.size === 4 ? seen : undefined;
    }, 30_000, "every pod to answer through the nftables VIP");
    expect([...viaVip.keys()].sort()).toEqual(everyPod);
  }, 120_000);
});
