// The nftables proxy's rules without a kernel: what planRuleset builds for literal views, and which statements
// diffScript emits between two of them (only what changed, in an order where no reference dangles).
import { describe, expect, it } from "vitest";
import {
  createScript,
  deleteScript,
  diffScript,
  emptyState,
  planRuleset,
  type NftState,
} from "../../src/net/nftables-rules.js";
import type { Backend, ServicePortView, ServiceView } from "../../src/net/types.js";

function backend(address: string, port = 8080): Backend {
  return { address, port, pod: `default/pod-${address}`, node: "n1" };
}

function port(backends: Backend[], extra: Partial<ServicePortView> = {}): ServicePortView {
  return { name: "", port: 80, protocol: "TCP", nodePort: 0, backends, ...extra };
}

function service(name: string, ports: ServicePortView[], extra: Partial<ServiceView> = {}): ServiceView {
  return { namespace: "default", name, clusterIp: "10.96.0.10", ports, sessionAffinity: "None", ...extra };
}

const state = (services: ServiceView[]): NftState => planRuleset(services).state;
const lines = (script: string) => script.split("\n").filter((l) => l !== "");

const web = (backends: Backend[], extra: Partial<ServicePortView> = {}) => service("web", [port(backends, extra)]);
const three = [backend("10.0.0.1"), backend("10.0.0.2"), backend("10.0.0.3")];

describe("planRuleset", () => {
  it("maps a VIP to a service chain that picks one of per-backend DNAT chains at random", () => {
    const s = state([web(three)]);
    expect([...s.elements["service-ips"]]).toEqual([["10.96.0.10 . tcp . 80", "goto svc.default/web/tcp/80"]]);
    expect(s.chains.get("svc.default/web/tcp/80")).toEqual([
      "numgen random mod 3 vmap { 0 : goto be.default/web/tcp/80/10.0.0.1/8080, 1 : goto be.default/web/tcp/80/10.0.0.2/8080, 2 : goto be.default/web/tcp/80/10.0.0.3/8080 }",
    ]);
    expect(s.chains.get("be.default/web/tcp/80/10.0.0.2/8080")).toEqual(["meta l4proto tcp dnat to 10.0.0.2:8080"]);
    expect(s.elements["service-nodeports"].size).toBe(0);
    expect(s.sets.size).toBe(0);
  });

  it("sends a NodePort through a chain that marks for masquerade, then to the same service chain", () => {
    const s = state([web([backend("10.0.0.1")], { protocol: "UDP", port: 53, nodePort: 30053 })]);
    expect([...s.elements["service-nodeports"]]).toEqual([["udp . 30053", "goto np.default/web/udp/53"]]);
    expect(s.chains.get("np.default/web/udp/53")).toEqual(["meta mark set meta mark | 0x4000", "goto svc.default/web/udp/53"]);
    expect(s.chains.get("svc.default/web/udp/53")).toEqual(["goto be.default/web/udp/53/10.0.0.1/8080"]);
    expect(s.chains.get("be.default/web/udp/53/10.0.0.1/8080")).toEqual(["meta l4proto udp dnat to 10.0.0.1:8080"]);
  });

  it("masquerades clients other than the node itself on their way to a container dialled at its own address", () => {
    const local: Backend = { ...backend("172.17.0.5"), podNetwork: true };
    const s = state([web([local])]);
    expect(s.chains.get("be.default/web/tcp/80/172.17.0.5/8080")).toEqual([
      "fib saddr type != local meta mark set meta mark | 0x4000",
      "meta l4proto tcp dnat to 172.17.0.5:8080",
    ]);
  });

  it("puts a service port without backends in the refusal sets, with no chains", () => {
    const s = state([web([], { nodePort: 30080 })]);
    expect([...s.elements["no-backend-ips"].keys()]).toEqual(["10.96.0.10 . tcp . 80"]);
    expect([...s.elements["no-backend-nodeports"].keys()]).toEqual(["tcp . 30080"]);
    expect(s.elements["service-ips"].size + s.elements["service-nodeports"].size + s.chains.size).toBe(0);
  });

  it("gives ClientIP affinity a timed set per backend, checked before the random pick", () => {
    const s = state([service("web", [port(three.slice(0, 2))], { sessionAffinity: "ClientIP" })]);
    expect([...s.sets.keys()]).toEqual(["aff.default/web/tcp/80/10.0.0.1/8080", "aff.default/web/tcp/80/10.0.0.2/8080"]);
    expect(s.sets.get("aff.default/web/tcp/80/10.0.0.1/8080")).toBe("type ipv4_addr; flags dynamic,timeout; timeout 10800s;");
    expect(s.chains.get("svc.default/web/tcp/80")).toEqual([
      "ip saddr @aff.default/web/tcp/80/10.0.0.1/8080 goto be.default/web/tcp/80/10.0.0.1/8080",
      "ip saddr @aff.default/web/tcp/80/10.0.0.2/8080 goto be.default/web/tcp/80/10.0.0.2/8080",
      "numgen random mod 2 vmap { 0 : goto be.default/web/tcp/80/10.0.0.1/8080, 1 : goto be.default/web/tcp/80/10.0.0.2/8080 }",
    ]);
    expect(s.chains.get("be.default/web/tcp/80/10.0.0.1/8080")).toEqual([
      "update @aff.default/web/tcp/80/10.0.0.1/8080 { ip saddr }",
      "meta l4proto tcp dnat to 10.0.0.1:8080",
    ]);
  });

  it("marks connections to a loopback backend so nat-input can source-NAT those from outside the node", () => {
    const s = state([web([backend("127.0.0.5", 9000)])]);
    expect(s.chains.get("be.default/web/tcp/80/127.0.0.5/9000")).toEqual(["meta mark set meta mark | 0x4000", "meta l4proto tcp dnat to 127.0.0.5:9000"]);
  });

  it("serves only NodePorts of a service without a cluster IP, and nothing for one with neither", () => {
    const s = state([service("np-only", [port([backend("10.0.0.1")], { nodePort: 30001 })], { clusterIp: "" }), service("none", [port([backend("10.0.0.1")])], { clusterIp: "" })]);
    expect(s.elements["service-ips"].size).toBe(0);
    expect([...s.elements["service-nodeports"].keys()]).toEqual(["tcp . 30001"]);
    expect([...s.chains.keys()]).toEqual(["be.default/np-only/tcp/80/10.0.0.1/8080", "svc.default/np-only/tcp/80", "np.default/np-only/tcp/80"]);
  });

  it("leaves out what nft cannot express or what clashes, saying why; the first owner (by namespace/name) keeps a clash", () => {
    const plan = planRuleset([
      service("b-second", [port([backend("10.0.0.2")], { nodePort: 30080 })]),
      service("a-first", [port([backend("10.0.0.1")], { nodePort: 30080 })]),
      service("v6", [port([backend("10.0.0.1")])], { clusterIp: "fd00::1" }),
      service("be6", [port([backend("fd00::2")])], { clusterIp: "10.96.0.99" }),
      service("Bad Name", [port([backend("10.0.0.1")])], { clusterIp: "10.96.0.98" }),
    ]);
    expect(plan.state.elements["service-ips"].get("10.96.0.10 . tcp . 80")).toBe("goto svc.default/a-first/tcp/80");
    expect(plan.skipped).toEqual([
      "service default/Bad Name port 80/TCP: namespace or name is not a DNS name",
      "service default/b-second port 80/TCP: 10.96.0.10:80/TCP already belongs to another service port",
      "service default/be6 port 80/TCP: backend fd00::2 is not IPv4",
      "service default/v6 port 80/TCP: cluster IP fd00::1 is not IPv4",
    ]);
  });

  it("keeps one chain for a backend listed twice", () => {
    const s = state([web([backend("10.0.0.1"), backend("10.0.0.1")])]);
    expect(s.chains.get("svc.default/web/tcp/80")).toEqual(["goto be.default/web/tcp/80/10.0.0.1/8080"]);
  });
});

describe("diffScript", () => {
  it("is empty for an unchanged view (and for one that differs only in pod names)", () => {
    expect(diffScript(state([web(three)]), state([web(three)]))).toBe("");
    const renamed = three.map((b) => ({ ...b, pod: "default/other" }));
    expect(diffScript(state([web(three)]), state([web(renamed)]))).toBe("");
    expect(diffScript(emptyState(), emptyState())).toBe("");
  });

  it("rewrites only the service chain and deletes only the gone backend's chain when one backend is removed", () => {
    expect(lines(diffScript(state([web(three)]), state([web(three.slice(0, 2))])))).toEqual([
      "flush chain ip flotilla svc.default/web/tcp/80",
      "add rule ip flotilla svc.default/web/tcp/80 numgen random mod 2 vmap { 0 : goto be.default/web/tcp/80/10.0.0.1/8080, 1 : goto be.default/web/tcp/80/10.0.0.2/8080 }",
      "flush chain ip flotilla be.default/web/tcp/80/10.0.0.3/8080",
      "delete chain ip flotilla be.default/web/tcp/80/10.0.0.3/8080",
    ]);
  });

  it("adds the new backend's chain before the service chain that refers to it", () => {
    expect(lines(diffScript(state([web(three.slice(0, 1))]), state([web(three.slice(0, 2))])))).toEqual([
      "add chain ip flotilla be.default/web/tcp/80/10.0.0.2/8080",
      "add rule ip flotilla be.default/web/tcp/80/10.0.0.2/8080 meta l4proto tcp dnat to 10.0.0.2:8080",
      "flush chain ip flotilla svc.default/web/tcp/80",
      "add rule ip flotilla svc.default/web/tcp/80 numgen random mod 2 vmap { 0 : goto be.default/web/tcp/80/10.0.0.1/8080, 1 : goto be.default/web/tcp/80/10.0.0.2/8080 }",
    ]);
  });

  it("adds a service as chains then its map element, and removes it as element then chains", () => {
    const other = service("api", [port([backend("10.0.1.1")], { nodePort: 30081 })], { clusterIp: "10.96.0.11" });
    const before = state([web(three)]);
    const after = state([web(three), other]);
    expect(lines(diffScript(before, after))).toEqual([
      "add chain ip flotilla be.default/api/tcp/80/10.0.1.1/8080",
      "add chain ip flotilla svc.default/api/tcp/80",
      "add chain ip flotilla np.default/api/tcp/80",
      "add rule ip flotilla be.default/api/tcp/80/10.0.1.1/8080 meta l4proto tcp dnat to 10.0.1.1:8080",
      "add rule ip flotilla svc.default/api/tcp/80 goto be.default/api/tcp/80/10.0.1.1/8080",
      "add rule ip flotilla np.default/api/tcp/80 meta mark set meta mark | 0x4000",
      "add rule ip flotilla np.default/api/tcp/80 goto svc.default/api/tcp/80",
      "add element ip flotilla service-ips { 10.96.0.11 . tcp . 80 : goto svc.default/api/tcp/80 }",
      "add element ip flotilla service-nodeports { tcp . 30081 : goto np.default/api/tcp/80 }",
    ]);
    expect(lines(diffScript(after, before))).toEqual([
      "delete element ip flotilla service-ips { 10.96.0.11 . tcp . 80 }",
      "delete element ip flotilla service-nodeports { tcp . 30081 }",
      "flush chain ip flotilla be.default/api/tcp/80/10.0.1.1/8080",
      "flush chain ip flotilla svc.default/api/tcp/80",
      "flush chain ip flotilla np.default/api/tcp/80",
      "delete chain ip flotilla be.default/api/tcp/80/10.0.1.1/8080",
      "delete chain ip flotilla svc.default/api/tcp/80",
      "delete chain ip flotilla np.default/api/tcp/80",
    ]);
  });

  it("moves a service port that loses its last backend from the VIP map to the refusal set, and back", () => {
    const up = state([web([backend("10.0.0.1")])]);
    const down = state([web([])]);
    expect(lines(diffScript(up, down))).toEqual([
      "delete element ip flotilla service-ips { 10.96.0.10 . tcp . 80 }",
      "add element ip flotilla no-backend-ips { 10.96.0.10 . tcp . 80 }",
      "flush chain ip flotilla be.default/web/tcp/80/10.0.0.1/8080",
      "flush chain ip flotilla svc.default/web/tcp/80",
      "delete chain ip flotilla be.default/web/tcp/80/10.0.0.1/8080",
      "delete chain ip flotilla svc.default/web/tcp/80",
    ]);
    expect(lines(diffScript(down, up))).toEqual([
      "add chain ip flotilla be.default/web/tcp/80/10.0.0.1/8080",
      "add chain ip flotilla svc.default/web/tcp/80",
      "add rule ip flotilla be.default/web/tcp/80/10.0.0.1/8080 meta l4proto tcp dnat to 10.0.0.1:8080",
      "add rule ip flotilla svc.default/web/tcp/80 goto be.default/web/tcp/80/10.0.0.1/8080",
      "delete element ip flotilla no-backend-ips { 10.96.0.10 . tcp . 80 }",
      "add element ip flotilla service-ips { 10.96.0.10 . tcp . 80 : goto svc.default/web/tcp/80 }",
    ]);
  });

  it("replaces a map element whose target changed (a VIP handed to another service)", () => {
    const before = state([service("a", [port([backend("10.0.0.1")])])]);
    const after = state([service("b", [port([backend("10.0.0.1")])])]);
    const script = lines(diffScript(before, after));
    expect(script.filter((l) => l.includes("element"))).toEqual([
      "delete element ip flotilla service-ips { 10.96.0.10 . tcp . 80 }",
      "add element ip flotilla service-ips { 10.96.0.10 . tcp . 80 : goto svc.default/b/tcp/80 }",
    ]);
    // The old service's chains go only after the element that referred to them.
    expect(script.indexOf("delete chain ip flotilla svc.default/a/tcp/80")).toBeGreaterThan(script.indexOf("delete element ip flotilla service-ips { 10.96.0.10 . tcp . 80 }"));
  });

  it("adds affinity sets before the chains using them and deletes them after", () => {
    const none = state([web(three.slice(0, 1))]);
    const sticky = state([service("web", [port(three.slice(0, 1))], { sessionAffinity: "ClientIP" })]);
    const on = lines(diffScript(none, sticky));
    expect(on[0]).toBe("add set ip flotilla aff.default/web/tcp/80/10.0.0.1/8080 { type ipv4_addr; flags dynamic,timeout; timeout 10800s; }");
    expect(on).toContain("flush chain ip flotilla be.default/web/tcp/80/10.0.0.1/8080");
    const off = lines(diffScript(sticky, none));
    expect(off.at(-1)).toBe("delete set ip flotilla aff.default/web/tcp/80/10.0.0.1/8080");
  });

  it("takes the empty state to the view's whole content, which createScript puts after the skeleton", () => {
    const s = state([web(three)]);
    const full = createScript(s);
    expect(full.startsWith("add table ip flotilla\ndelete table ip flotilla\ntable ip flotilla {")).toBe(true);
    expect(full.endsWith(diffScript(emptyState(), s))).toBe(true);
    expect(full).toContain("type nat hook prerouting priority -100");
    expect(full).toContain("type nat hook output priority -100");
    expect(deleteScript()).toBe("add table ip flotilla\ndelete table ip flotilla\n");
  });
});
