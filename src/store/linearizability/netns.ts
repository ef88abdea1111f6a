// Network namespaces for partition faults: each master in its own namespace, the runner (workload and nemesis) in
// another, all joined by veth pairs to a bridge inside a namespace of their own. Only test-made namespaces are
// touched: every link is created inside one (`ip -n`), never in the host's namespace, and the addresses
// (10.213.0.0/24) exist only there. Deleting the namespaces removes everything.
// A partition isolates one master from the other masters with blackhole routes on both sides, while the runner can
// still reach it: so a deposed leader's clients keep talking to it (the interesting case for stale reads).
// Invariants: `teardown()` deletes every namespace `setup()` made, even after a partial setup.
import { spawnSync } from "node:child_process";
import type { MasterSpec } from "./cluster.js";

const SUBNET = "10.213.0";

function ip(...args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr || r.error?.message}`);
}

/** Whether partitions can be made here: root, and `ip netns` usable. */
export function netnsAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync("ip", ["netns", "list"], { encoding: "utf8", timeout: 5000 });
  return r.status === 0;
}

export class Netns {
  readonly bridge: string;
  readonly client: string;
  private readonly made: string[] = [];
  private readonly blackholes: [string, string][] = [];

  constructor(readonly prefix = `fljep${process.pid}`, readonly count = 3) {
    this.bridge = `${prefix}-br`;
    this.client = `${prefix}-c`;
  }

  masterNs(name: string): string {
    return `${this.prefix}-${name}`;
  }

  /** Masters at 10.213.0.11..: API, Raft and etcd on basePort, +1, +2. */
  masters(basePort = 19000): MasterSpec[] {
    return Array.from({ length: this.count }, (_, i) => {
      const host = `${SUBNET}.${11 + i}`;
      return { name: `m${i + 1}`, api: `${host}:${basePort}`, raft: `${host}:${basePort + 1}`, etcd: `${host}:${basePort + 2}` };
    });
  }

  setup(): void {
    this.addNs(this.bridge);
    ip("-n", this.bridge, "link", "add", "br0", "type", "bridge");
    ip("-n", this.bridge, "link", "set", "br0", "up");
    this.attach(this.client, `${SUBNET}.2`, "vc");
    this.masters().forEach((m) => this.attach(this.masterNs(m.name), m.api.split(":")[0], `v${m.name}`));
  }

  teardown(): void {
    for (const ns of this.made.splice(0).reverse()) spawnSync("ip", ["netns", "del", ns], { timeout: 10_000 });
  }

  /** Cuts `name` off from the other masters (both directions); the runner still reaches everyone. */
  isolate(name: string): void {
    const all = this.masters();
    const target = all.find((m) => m.name === name)!;
    for (const other of all.filter((m) => m.name !== name)) {
      this.blackhole(this.masterNs(other.name), target.api.split(":")[0]);
      this.blackhole(this.masterNs(name), other.api.split(":")[0]);
    }
  }

  heal(): void {
    for (const [ns, addr] of this.blackholes.splice(0)) spawnSync("ip", ["-n", ns, "route", "del", "blackhole", `${addr}/32`], { timeout: 10_000 });
  }

  private blackhole(ns: string, addr: string): void {
    ip("-n", ns, "route", "add", "blackhole", `${addr}/32`);
    this.blackholes.push([ns, addr]);
  }

  private addNs(ns: string): void {
    ip("netns", "add", ns);
    this.made.push(ns);
    ip("-n", ns, "link", "set", "lo", "up");
  }

  /** A namespace with one veth (eth0, at `addr`) whose peer is a port of the bridge. */
  private attach(ns: string, addr: string, port: string): void {
    this.addNs(ns);
    ip("-n", this.bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
    ip("-n", this.bridge, "link", "set", port, "master", "br0", "up");
    ip("-n", ns, "addr", "add", `${addr}/24`, "dev", "eth0");
    ip("-n", ns, "link", "set", "eth0", "up");
  }
}
