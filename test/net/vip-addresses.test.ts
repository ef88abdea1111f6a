// VIP holders: LoopbackVips, DummyInterfaceVips against a fake `ip`, and (as root) inside a real network namespace.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  canonicalAddress,
  type CommandRunner,
  DummyInterfaceVips,
  isLoopbackAddress,
  LoopbackVips,
  parseInterface,
} from "../../src/net/vip-addresses.js";

const exec = promisify(execFile);

describe("LoopbackVips", () => {
  it("accepts loopback VIPs with nothing to do, and refuses others", async () => {
    const vips = new LoopbackVips();
    await vips.ensure(["127.0.96.1", "127.255.0.9", "::1"]);
    await expect(vips.ensure(["127.0.96.1", "10.96.0.1"])).rejects.toThrow(/10\.96\.0\.1 need DummyInterfaceVips/);
    await vips.close();
  });

  it("knows loopback addresses", () => {
    expect(isLoopbackAddress("127.0.0.1")).toBe(true);
    expect(isLoopbackAddress("0:0::1")).toBe(true);
    expect(isLoopbackAddress("128.0.0.1")).toBe(false);
    expect(isLoopbackAddress("fd00::1")).toBe(false);
    expect(canonicalAddress("FD00:0:0::0A")).toBe("fd00::a");
  });
});

/** A fake `ip` that records commands and keeps an interface in memory. */
function fakeIp(options: { dummy?: boolean; existingKind?: string } = {}) {
  const calls: string[] = [];
  let link: { kind: string; addresses: Map<string, number> } | undefined =
    options.existingKind === undefined ? undefined : { kind: options.existingKind, addresses: new Map() };
  const run: CommandRunner = async (command, args) => {
    calls.push([command, ...args].join(" "));
    const rest = args[0] === "-n" ? args.slice(2) : [...args];
    const line = rest.join(" ");
    const missing = (): Error => new Error('ip: Device "flotilla0" does not exist.');
    if (line.startsWith("-d -j addr show dev")) {
      if (link === undefined) throw missing();
      const addr_info = [...link.addresses].map(([local, prefixlen]) => ({ family: "inet", local, prefixlen, scope: "global" }));
      addr_info.push({ family: "inet6", local: "fe80::1", prefixlen: 64, scope: "link" });
      return JSON.stringify([{ ifname: "flotilla0", linkinfo: { info_kind: link.kind }, addr_info }]);
    }
    if (line.startsWith("link add")) {
      const kind = rest[4]!;
      if (kind === "dummy" && options.dummy === false) throw new Error("ip: Error: Unknown device type.");
      link = { kind, addresses: new Map() };
      return "";
    }
    if (line.startsWith("link del")) {
      if (link === undefined) throw new Error('ip: Cannot find device "flotilla0"');
      link = undefined;
      return "";
    }
    const [address, prefix] = rest[2]!.split("/");
    if (line.startsWith("addr add")) link!.addresses.set(address!, Number(prefix));
    else if (line.startsWith("addr del")) link!.addresses.delete(address!);
    return "";
  };
  return { run, calls };
}

describe("DummyInterfaceVips (fake ip)", () => {
  it("creates the interface, adds missing /32s, removes stale ones, and deletes the interface on close", async () => {
    const ip = fakeIp();
    const vips = new DummyInterfaceVips({ run: ip.run, netns: "testns" });
    await vips.ensure(["10.96.0.1", "10.96.0.2"]);
    await vips.ensure(["10.96.0.2", "fd00::a"]);
    await vips.close();
    await vips.close(); // already gone: fine
    expect(ip.calls).toEqual([
      "ip -n testns -d -j addr show dev flotilla0",
      "ip -n testns link add flotilla0 type dummy",
      "ip -n testns addr add 10.96.0.1/32 dev flotilla0",
      "ip -n testns addr add 10.96.0.2/32 dev flotilla0",
      "ip -n testns -d -j addr show dev flotilla0",
      "ip -n testns addr add fd00::a/128 dev flotilla0",
      "ip -n testns addr del 10.96.0.1/32 dev flotilla0",
      "ip -n testns link del flotilla0",
      "ip -n testns link del flotilla0",
    ]);
  });

  it("does nothing but read when the interface already holds exactly the VIPs", async () => {
    const ip = fakeIp();
    const vips = new DummyInterfaceVips({ run: ip.run, name: "flotilla0" });
    await vips.ensure(["10.96.0.1"]);
    ip.calls.length = 0;
    await vips.ensure(["10.96.0.1"]);
    expect(ip.calls).toEqual(["ip -d -j addr show dev flotilla0"]);
  });

  it("falls back to an empty bridge on a kernel without dummy interfaces", async () => {
    const ip = fakeIp({ dummy: false });
    const warnings: string[] = [];
    const vips = new DummyInterfaceVips({ run: ip.run, log: { info: () => {}, warn: (_o, m) => warnings.push(m) } });
    await vips.ensure(["10.96.0.1"]);
    await vips.ensure(["10.96.0.1"]); // the bridge it made is accepted on the next read
    expect(ip.calls).toContain("ip link add flotilla0 type bridge");
    expect(warnings).toHaveLength(1);
  });

  it("refuses to manage an existing interface of another kind", async () => {
    const ip = fakeIp({ existingKind: "veth" });
    const vips = new DummyInterfaceVips({ run: ip.run });
    await expect(vips.ensure(["10.96.0.1"])).rejects.toThrow(/is a "veth", not a dummy/);
    expect(ip.calls.some((c) => c.includes("addr add"))).toBe(false);
  });

  it("rejects what is not an address or an interface name before running anything", async () => {
    const ip = fakeIp();
    await expect(new DummyInterfaceVips({ run: ip.run }).ensure(["-x"])).rejects.toThrow(/not an IP address/);
    expect(() => new DummyInterfaceVips({ run: ip.run, name: "-bad" })).toThrow(/not a valid interface name/);
    expect(() => new DummyInterfaceVips({ run: ip.run, name: "much-too-long-name" })).toThrow(/not a valid interface name/);
    expect(ip.calls).toEqual([]);
  });

  it("parses `ip -d -j addr show`, leaving out link-local addresses", () => {
    const parsed = parseInterface(
      JSON.stringify([
        {
          ifname: "flotilla0",
          linkinfo: { info_kind: "dummy" },
          addr_info: [
            { family: "inet", local: "10.96.0.1", prefixlen: 32, scope: "global" },
            { family: "inet6", local: "fe80::1", prefixlen: 64, scope: "link" },
          ],
        },
      ]),
    );
    expect(parsed).toEqual({ kind: "dummy", addresses: new Map([["10.96.0.1", 32]]) });
    expect(parseInterface("[]")).toBeUndefined();
  });
});

const isRoot = process.getuid?.() === 0;
const netns = `flup${process.pid}`;

interface IpAddrJson {
  ifname: string;
  addr_info: { local: string; prefixlen: number; scope: string }[];
}

async function addressesIn(ns: string): Promise<string[]> {
  const { stdout } = await exec("ip", ["-n", ns, "-j", "addr", "show", "dev", "flotilla0"]);
  const [link] = JSON.parse(stdout) as IpAddrJson[];
  return link!.addr_info.filter((a) => a.scope !== "link").map((a) => `${a.local}/${a.prefixlen}`).sort();
}

describe.skipIf(!isRoot && process.env.CI !== "true")("DummyInterfaceVips in a network namespace (root)", () => {
  beforeAll(async () => {
    if (!isRoot) throw new Error("this test creates a network namespace and interfaces: run it as root (CI does)");
    await exec("ip", ["netns", "add", netns]);
    await exec("ip", ["-n", netns, "link", "set", "lo", "up"]); // local traffic in the namespace goes over lo
  });

  afterAll(async () => {
    if (isRoot) await exec("ip", ["netns", "del", netns]).catch(() => {});
  });

  it("creates flotilla0, holds exactly the VIPs it is given, and deletes it on close", async () => {
    if (!isRoot) throw new Error("not root");
    const vips = new DummyInterfaceVips({ netns });
    try {
      await vips.ensure(["10.96.7.1", "10.96.7.2"]);
      expect(await addressesIn(netns)).toEqual(["10.96.7.1/32", "10.96.7.2/32"]);

      // A socket inside the namespace can bind a VIP and reach it: the address is really local there.
      const script =
        "const net=require('net');const s=net.createServer(c=>c.end('ok')).listen(7070,'10.96.7.2',()=>" +
        "net.connect(7070,'10.96.7.2').on('data',d=>{process.stdout.write(String(d));process.exit(0)}))";
      const { stdout } = await exec("ip", ["netns", "exec", netns, process.execPath, "-e", script], { timeout: 20_000 });
      expect(stdout).toBe("ok");

      await vips.ensure(["10.96.7.2"]);
      expect(await addressesIn(netns)).toEqual(["10.96.7.2/32"]);
    } finally {
      await vips.close();
    }
    await expect(exec("ip", ["-n", netns, "-j", "addr", "show", "dev", "flotilla0"])).rejects.toThrow(/does not exist/);
  });

  it("cleans up addresses left by an earlier run", async () => {
    await exec("ip", ["-n", netns, "link", "add", "flotilla0", "type", "dummy"]).catch(async () => {
      await exec("ip", ["-n", netns, "link", "add", "flotilla0", "type", "bridge"]); // a kernel without dummy
    });
    await exec("ip", ["-n", netns, "addr", "add", "10.96.7.9/32", "dev", "flotilla0"]);
    const vips = new DummyInterfaceVips({ netns });
    try {
      await vips.ensure(["10.96.7.1"]);
      expect(await addressesIn(netns)).toEqual(["10.96.7.1/32"]);
    } finally {
      await vips.close();
    }
  });
});
