// The nftables proxy against a real kernel, in network namespaces made by this file (names flnft<pid><n|o|t>):
//   "node"  (n): runs the proxy's table; lo, veth to o (10.231.1.1), veth to t (10.231.2.1); forwards packets.
//   "other" (o): 10.231.1.2, default route via the node: another node or a container host (its packets to VIPs and
//                NodePorts reach the node's prerouting hook).
//   "third" (t): 10.231.2.2, default route via the node: another node that runs a backend.
// Backends and clients are real processes (node one-liners started with nsenter --net=...): each backend answers a
// connection with "<name> <client address it saw>", so the tests see both the balancing and the source NAT. Only
// addresses inside these namespaces are dialled; the host's network is never touched. afterAll stops every process
// and deletes the namespaces (and with them the veths), even after a failure.
// Needs root (and nft, nsenter, ip): skipped otherwise, but under CI=true it fails loudly instead.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendChainName, serviceChainName } from "../../src/net/nftables-rules.js";
import { NftablesProxy, nftablesAvailable, PER_PORT_CLEAR_LIMIT, runNft } from "../../src/net/nftables-proxy.js";
import type { Backend, ServicePortView, ServiceView } from "../../src/net/types.js";

const isRoot = process.getuid?.() === 0;
const inCi = process.env.CI === "true";

const NS = { node: `flnft${process.pid}n`, other: `flnft${process.pid}o`, third: `flnft${process.pid}t` };
const NODE_O = "10.231.1.1";
const OTHER = "10.231.1.2";
const NODE_T = "10.231.2.1";
const THIRD = "10.231.2.2";

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
}

/** Runs a command inside a test namespace. */
const inNs = (ns: string, cmd: string, ...args: string[]) => sh("nsenter", [`--net=/run/netns/${ns}`, cmd, ...args]);
/** Runs a Node script in the node's namespace and resolves with its first line of output. */
const inNsNode = (script: string) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn("nsenter", [`--net=/run/netns/${NS.node}`, process.execPath, "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += String(d)));
    child.on("error", reject);
    child.on("close", () => resolve(out.trim().split("\n")[0] ?? ""));
  });

// A backend: answers every TCP connection (or UDP datagram) with "<name> <peer address>", then closes.
const BACKEND = `
const [name, host, port, proto] = process.argv.slice(1);
const done = () => console.log("ready");
if (proto === "udp") {
  const s = require("node:dgram").createSocket("udp4");
  s.on("message", (_m, r) => s.send(name + " " + r.address, r.port, r.address));
  s.bind(Number(port), host, done);
} else {
  require("node:net").createServer((c) => { c.on("error", () => {}); c.end(name + " " + c.remoteAddress); }).listen(Number(port), host, done);
}`;

// A client: makes `count` connections (or UDP exchanges) one after the other; prints a JSON array with, for each,
// the answer or the error code, and how long it took.
const CLIENT = `
const [host, port, count, proto] = process.argv.slice(1);
const one = () => new Promise((resolve) => {
  const start = Date.now();
  const end = (out) => resolve({ out, ms: Date.now() - start });
  if (proto === "udp") {
    const s = require("node:dgram").createSocket("udp4");
    const t = setTimeout(() => { s.close(); end("timeout"); }, 3000);
    s.on("error", (e) => { clearTimeout(t); s.close(); end(e.code); });
    s.on("message", (m) => { clearTimeout(t); s.close(); end(m.toString()); });
    s.connect(Number(port), host, () => s.send("hi"));
    return;
  }
  let data = "";
  const c = require("node:net").connect(Number(port), host);
  c.setTimeout(3000, () => { c.destroy(); end("timeout"); });
  c.on("data", (d) => (data += d));
  c.on("end", () => end(data));
  c.on("error", (e) => end(e.code));
});
(async () => { const r = []; for (let i = 0; i < Number(count); i++) r.push(await one()); console.log(JSON.stringify(r)); })();`;

interface Reply {
  out: string;
  ms: number;
}

/** `count` connections from a process in `ns` to host:port. */
function dial(ns: string, host: string, port: number, count: number, proto: "tcp" | "udp" = "tcp"): Promise<Reply[]> {
  return new Promise((resolve, reject) => {
    const child = spawn("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", CLIENT, host, String(port), String(count), proto]);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out) as Reply[]) : reject(new Error(`client in ${ns} failed: ${err}`))));
  });
}

/** The distinct backend names that answered (errors as themselves). */
const names = (replies: Reply[]) => new Set(replies.map((r) => r.out.split(" ")[0]));
/** Answers as "<name> <address seen>", distinct. */
const seen = (replies: Reply[]) => new Set(replies.map((r) => r.out));

const processes: ChildProcess[] = [];

/** Starts a backend process in `ns` and waits until it listens. */
async function startBackend(ns: string, name: string, host: string, port: number, proto: "tcp" | "udp" = "tcp"): Promise<Backend> {
  const child = spawn("nsenter", [`--net=/run/netns/${ns}`, process.execPath, "-e", BACKEND, name, host, String(port), proto], { stdio: ["ignore", "pipe", "inherit"] });
  processes.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
    child.on("exit", (code) => reject(new Error(`backend ${name} exited with ${code}`)));
  });
  return { address: host, port, pod: `default/${name}`, node: ns };
}

function svc(name: string, clusterIp: string, ports: Partial<ServicePortView>[], sessionAffinity: ServiceView["sessionAffinity"] = "None"): ServiceView {
  return {
    namespace: "default",
    name,
    clusterIp,
    sessionAffinity,
    ports: ports.map((p) => ({ name: "", port: 80, protocol: "TCP", nodePort: 0, backends: [], ...p })),
  };
}

interface NftJson {
  nftables: Record<string, { name?: string; handle?: number; chain?: string; elem?: unknown[]; expr?: unknown[] }>[];
}

async function listTable(): Promise<NftJson> {
  return JSON.parse(await runNft(["-a", "-j", "list", "table", "ip", "flotilla"], { netns: NS.node })) as NftJson;
}

/** Chain name → its rules' handles. */
async function ruleHandles(): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const item of (await listTable()).nftables) {
    if (item.chain) out.set(item.chain.name!, []);
    if (item.rule) out.get(item.rule.chain!)?.push(item.rule.handle!);
  }
  return out;
}

describe.skipIf(!isRoot && !inCi)("the nftables proxy in network namespaces", () => {
  const proxy = new NftablesProxy({ netns: NS.node });
  let loop: Backend; // in the node namespace, on a loopback address (the process driver's pod addresses)
  let local: Backend; // in the node namespace, on the node's address
  let remote: Backend; // in the third namespace
  let remoteUdp: Backend;

  const web = (backends: Backend[]) => svc("web", "10.96.0.10", [{ port: 80, nodePort: 30080, backends }]);
  const webPort = web([]).ports[0]!;
  const webChain = serviceChainName(web([]), webPort);
  const webBackendChain = (b: Backend) => backendChainName(web([]), webPort, b);
  const edge = (backends: Backend[]) => svc("edge", "10.96.0.11", [{ port: 80, nodePort: 30081, backends }]);
  const empty = svc("empty", "10.96.0.12", [{ port: 80, nodePort: 30082 }, { port: 53, protocol: "UDP" }]);
  const dns = (backends: Backend[]) => svc("dns", "10.96.0.14", [{ port: 53, protocol: "UDP", backends }]);
  let view: () => ServiceView[];

  beforeAll(async () => {
    if (!isRoot) throw new Error("this test makes network namespaces and nftables rules: run it as root (CI does)");
    for (const ns of Object.values(NS)) {
      sh("ip", ["netns", "add", ns]);
      inNs(ns, "ip", "link", "set", "lo", "up");
    }
    // Probed inside the test's namespace (the probe creates and deletes a table): nothing on the host is touched.
    const available = await nftablesAvailable({ netns: NS.node });
    if (!available.ok) throw new Error(`nftables is not usable here: ${available.reason}`);
    const p = process.pid % 100_000;
    sh("ip", ["link", "add", `fo${p}`, "netns", NS.node, "type", "veth", "peer", "name", `fn${p}`, "netns", NS.other]);
    sh("ip", ["link", "add", `ft${p}`, "netns", NS.node, "type", "veth", "peer", "name", `fn${p}`, "netns", NS.third]);
    const link = (ns: string, dev: string, addr: string) => {
      inNs(ns, "ip", "addr", "add", `${addr}/24`, "dev", dev);
      inNs(ns, "ip", "link", "set", dev, "up");
    };
    link(NS.node, `fo${p}`, NODE_O);
    link(NS.node, `ft${p}`, NODE_T);
    link(NS.other, `fn${p}`, OTHER);
    link(NS.third, `fn${p}`, THIRD);
    // The node routes service IPs like any other destination (a default route); the others send everything to it.
    inNs(NS.node, "ip", "route", "add", "default", "via", OTHER);
    inNs(NS.other, "ip", "route", "add", "default", "via", NODE_O);
    inNs(NS.third, "ip", "route", "add", "default", "via", NODE_T);
    inNs(NS.node, "sysctl", "-qw", "net.ipv4.ip_forward=1");

    [loop, local, remote, remoteUdp] = await Promise.all([
      startBackend(NS.node, "loop", "127.0.0.21", 8001),
      startBackend(NS.node, "local", NODE_O, 8002),
      startBackend(NS.third, "remote", THIRD, 8003),
      startBackend(NS.third, "remote-udp", THIRD, 5353, "udp"),
    ]);
    view = () => [web([loop, local, remote]), edge([local, remote]), empty, dns([remoteUdp])];
    await proxy.sync(view());
  });

  afterAll(async () => {
    await proxy.close().catch(() => {});
    for (const child of processes) child.kill("SIGKILL");
    for (const ns of Object.values(NS)) spawnSync("ip", ["netns", "del", ns]);
  });

  it("says why nftables is unusable when nft is missing", async () => {
    expect(await nftablesAvailable({ netns: NS.node, nft: "/nonexistent/nft" })).toEqual({ ok: false, reason: "nft not found (install the nftables package)" });
  });

  it("answers a VIP for the node's own processes from all three backends, with no SNAT", async () => {
    const replies = await dial(NS.node, "10.96.0.10", 80, 30);
    expect(names(replies)).toEqual(new Set(["loop", "local", "remote"]));
    // The source is the node's address on its route to the VIP (case a): the other node sees it unchanged.
    expect(seen(replies)).toEqual(new Set([`loop ${NODE_O}`, `local ${NODE_O}`, `remote ${NODE_O}`]));
  });

  it("answers a VIP for a container host behind the node without SNAT: backends see the client's own address", async () => {
    const replies = await dial(NS.other, "10.96.0.11", 80, 20);
    expect(seen(replies)).toEqual(new Set([`local ${OTHER}`, `remote ${OTHER}`]));
  });

  it("answers a NodePort from another node on the node's address, masquerading only towards a backend elsewhere", async () => {
    const replies = await dial(NS.other, NODE_O, 30081, 20);
    // The local backend sees the real client; the third namespace sees the node (so its replies come back through it).
    expect(seen(replies)).toEqual(new Set([`local ${OTHER}`, `remote ${NODE_T}`]));
    // A node process dialling its own NodePort: the same, its address being the node's.
    expect(seen(await dial(NS.node, NODE_O, 30081, 20))).toEqual(new Set([`local ${NODE_O}`, `remote ${NODE_T}`]));
  });

  it("answers a UDP VIP", async () => {
    const replies = await dial(NS.node, "10.96.0.14", 53, 3, "udp");
    expect(replies.map((r) => r.out)).toEqual([`remote-udp ${NODE_O}`, `remote-udp ${NODE_O}`, `remote-udp ${NODE_O}`]);
  });

  it("installs DNAT rules and maps for the VIP, and nothing listens on it in userspace", async () => {
    const items = (await listTable()).nftables;
    const map = items.find((i) => i.map?.name === "service-ips")?.map;
    expect(JSON.stringify(map?.elem)).toContain("10.96.0.10");
    const dnats = items.filter((i) => i.rule && JSON.stringify(i.rule.expr).includes('"dnat"')).map((i) => i.rule!.chain);
    expect(dnats).toEqual(expect.arrayContaining([webBackendChain(loop), webBackendChain(local), webBackendChain(remote)]));
    const listeners = inNs(NS.node, "ss", "-Hltnu").trim().split("\n");
    // The backends' own sockets, and no socket on a service port.
    expect(listeners.some((l) => /\s\S*:(80|30080|30081)\s/.test(l) || l.includes("10.96."))).toBe(false);
    expect(listeners.some((l) => l.includes("127.0.0.21:8001"))).toBe(true);
  });

  it("refuses at once a service without backends: VIP from the node and from a container host, NodePort, UDP", async () => {
    const fromNode = await dial(NS.node, "10.96.0.12", 80, 3);
    const fromOther = await dial(NS.other, "10.96.0.12", 80, 3);
    const nodePort = await dial(NS.other, NODE_O, 30082, 3);
    const udp = await dial(NS.node, "10.96.0.12", 53, 1, "udp");
    for (const r of [...fromNode, ...fromOther, ...nodePort, ...udp]) {
      expect(r.out).toBe("ECONNREFUSED");
      expect(r.ms).toBeLessThan(1000);
    }
  });

  it("keeps a ClientIP client on one backend, and moves it when that backend goes", async () => {
    const sticky = (backends: Backend[]) => svc("sticky", "10.96.0.13", [{ port: 80, backends }], "ClientIP");
    await proxy.sync([...view(), sticky([local, remote])]);
    const first = names(await dial(NS.node, "10.96.0.13", 80, 15));
    expect(first.size).toBe(1);
    const [chosen] = [...first];
    const survivor = chosen === "local" ? remote : local;
    await proxy.sync([...view(), sticky([survivor])]);
    expect(names(await dial(NS.node, "10.96.0.13", 80, 5))).toEqual(new Set([survivor.pod.split("/")[1]]));
    await proxy.sync(view());
  });

  it("after a sync that removes a backend, sends no new connection to it and leaves unchanged chains' rules alone", async () => {
    const before = await ruleHandles();
    await proxy.sync([web([loop, local]), edge([local, remote]), empty, dns([remoteUdp])]);
    const after = await ruleHandles();
    // The removed backend's chain is gone, the service chain was rewritten, every other chain kept its rules.
    expect(before.has(webBackendChain(remote))).toBe(true);
    expect(after.has(webBackendChain(remote))).toBe(false);
    expect(after.get(webChain)).not.toEqual(before.get(webChain));
    expect(after.size).toBe(before.size - 1);
    for (const [chain, handles] of after) {
      if (chain === webChain) continue;
      expect({ chain, handles }).toEqual({ chain, handles: before.get(chain) });
    }
    const replies = await dial(NS.node, "10.96.0.10", 80, 30);
    expect(names(replies)).toEqual(new Set(["loop", "local"]));
    await proxy.sync(view());
    expect(names(await dial(NS.node, "10.96.0.10", 80, 30))).toEqual(new Set(["loop", "local", "remote"]));
  });

  it("reaches a loopback backend from outside the node where route_localnet is set; the backend sees 127.0.0.1", async () => {
    // Only on the test's own veth, in the test's namespace: the proxy itself never sets this sysctl.
    inNs(NS.node, "sysctl", "-qw", `net.ipv4.conf.fo${process.pid % 100_000}.route_localnet=1`);
    await proxy.sync([...view(), svc("loopy", "10.96.0.15", [{ port: 80, nodePort: 30085, backends: [loop] }])]);
    expect(seen(await dial(NS.other, NODE_O, 30085, 5))).toEqual(new Set(["loop 127.0.0.1"]));
    expect(seen(await dial(NS.other, "10.96.0.15", 80, 5))).toEqual(new Set(["loop 127.0.0.1"]));
    await proxy.sync(view());
  });

  // One VIP newly routed: a `conntrack -D` for it; more than PER_PORT_CLEAR_LIMIT at once: one listing finds it.
  it.each([1, PER_PORT_CLEAR_LIMIT + 2])("clears a flow that reached a VIP before it was routed, so a connection reusing its source port is NATed (%i VIPs routed at once)", async (routedAtOnce) => {
    // From a fixed source port: a first try before the VIP exists goes out un-NATed and gets no answer; conntrack
    // keeps that flow, and without clearing it the second try from the same port would follow it and hang.
    const sourcePort = 40122 + routedAtOnce; // a port of its own per case: no TIME_WAIT from the other one
    const fromPort = (timeoutMs: number) => inNsNode(`
      const s = require("node:net").connect({ host: "10.96.0.15", port: 80, localPort: ${sourcePort}, localAddress: "${NODE_O}" });
      s.setTimeout(${timeoutMs}, () => { console.log("timeout"); process.exit(0); });
      s.on("data", (d) => { console.log(String(d).split(" ")[0]); process.exit(0); });
      s.on("error", (e) => { console.log(e.code); process.exit(0); });`);
    expect(await fromPort(500)).toBe("timeout");
    expect(inNs(NS.node, "conntrack", "-L", "-p", "tcp", "--orig-dst", "10.96.0.15", "--orig-port-src", String(sourcePort))).toContain("UNREPLIED");
    const late = svc("late", "10.96.0.15", [{ port: 80, backends: [local] }]);
    const others = Array.from({ length: routedAtOnce - 1 }, (_, i) => svc(`late-${i}`, `10.96.1.${i + 1}`, [{ port: 80, backends: [local] }]));
    await proxy.sync([...view(), late, ...others]);
    expect(await fromPort(5000)).toBe("local");
    await proxy.sync(view());
  });

  it("recreates the table when someone deleted it behind its back", async () => {
    await runNft(["delete", "table", "ip", "flotilla"], { netns: NS.node });
    await proxy.sync([web([local]), edge([local, remote]), empty, dns([remoteUdp])]);
    expect(names(await dial(NS.node, "10.96.0.10", 80, 5))).toEqual(new Set(["local"]));
    await proxy.sync(view());
  });

  it("deletes its table on close", async () => {
    const closing = new NftablesProxy({ netns: NS.other });
    await closing.sync([edge([local])]);
    await runNft(["list", "table", "ip", "flotilla"], { netns: NS.other });
    await closing.close();
    await expect(runNft(["list", "table", "ip", "flotilla"], { netns: NS.other })).rejects.toThrow(/No such file or directory/);
    await expect(closing.sync([])).rejects.toThrow(/closed/);
  });
});
