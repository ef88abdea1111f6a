// How the userspace proxy maps a view of services to routes, listeners and VIPs (pure).
import { describe, expect, it } from "vitest";
import { listenerKey, planUserspace } from "../../src/net/userspace-plan.js";
import type { Backend, ServicePortView, ServiceView } from "../../src/net/types.js";

const web: Backend = { address: "10.1.0.1", port: 8080, pod: "default/web-0", node: "n1" };

function port(p: Partial<ServicePortView> & { port: number }): ServicePortView {
  return { name: "", protocol: "TCP", nodePort: 0, backends: [web], ...p };
}

function service(name: string, clusterIp: string, ports: ServicePortView[], namespace = "default"): ServiceView {
  return { namespace, name, clusterIp, ports, sessionAffinity: "None" };
}

describe("planUserspace", () => {
  it("gives each service port a route, a VIP listener and one NodePort listener per node address", () => {
    const plan = planUserspace(
      [service("web", "10.96.0.10", [port({ name: "http", port: 80, nodePort: 30080 }), port({ name: "dns", port: 53, protocol: "UDP" })])],
      ["192.168.1.5", "10.0.0.5"],
    );
    expect([...plan.routes.keys()]).toEqual(["default/web:80/TCP", "default/web:53/UDP"]);
    expect(plan.routes.get("default/web:80/TCP")).toMatchObject({ label: "default/web:http", backends: [web], affinity: "None" });
    expect([...plan.listeners.values()]).toEqual([
      { key: "TCP/10.96.0.10:80", protocol: "TCP", address: "10.96.0.10", port: 80, route: "default/web:80/TCP" },
      { key: "TCP/192.168.1.5:30080", protocol: "TCP", address: "192.168.1.5", port: 30080, route: "default/web:80/TCP" },
      { key: "TCP/10.0.0.5:30080", protocol: "TCP", address: "10.0.0.5", port: 30080, route: "default/web:80/TCP" },
      { key: "UDP/10.96.0.10:53", protocol: "UDP", address: "10.96.0.10", port: 53, route: "default/web:53/UDP" },
    ]);
    expect(plan.vips).toEqual(["10.96.0.10"]);
    expect(plan.conflicts).toEqual([]);
  });

  it("lists each VIP once, sorted, and only VIPs with a listener", () => {
    const plan = planUserspace(
      [
        service("b", "10.96.0.2", [port({ port: 80 }), port({ port: 443 })]),
        service("a", "10.96.0.1", [port({ port: 80 })]),
        service("none", "10.96.0.3", []),
        service("headless", "", [port({ port: 80 })]),
      ],
      [],
    );
    expect(plan.vips).toEqual(["10.96.0.1", "10.96.0.2"]);
    expect(plan.routes.has("default/headless:80/TCP")).toBe(false);
  });

  it("serves a NodePort even without a cluster IP", () => {
    const plan = planUserspace([service("np", "", [port({ port: 80, nodePort: 30001 })])], ["127.0.0.1"]);
    expect([...plan.listeners.keys()]).toEqual(["TCP/127.0.0.1:30001"]);
    expect(plan.vips).toEqual([]);
  });

  it("keeps the first claimant of a listener and reports the conflict", () => {
    const plan = planUserspace(
      [service("first", "10.96.0.1", [port({ port: 80, nodePort: 30000 })]), service("second", "10.96.0.2", [port({ port: 80, nodePort: 30000 })])],
      ["10.0.0.5"],
    );
    expect(plan.listeners.get("TCP/10.0.0.5:30000")?.route).toBe("default/first:80/TCP");
    expect(plan.listeners.get("TCP/10.96.0.2:80")?.route).toBe("default/second:80/TCP");
    expect(plan.conflicts).toEqual([{ listener: "TCP/10.0.0.5:30000", kept: "default/first:80", dropped: "default/second:80" }]);
  });

  it("treats TCP and UDP on the same port as different listeners", () => {
    const plan = planUserspace([service("dns", "10.96.0.10", [port({ port: 53 }), port({ port: 53, protocol: "UDP" })])], []);
    expect([...plan.listeners.keys()]).toEqual(["TCP/10.96.0.10:53", "UDP/10.96.0.10:53"]);
  });

  it("skips invalid ports and addresses", () => {
    const plan = planUserspace([service("bad", "not-an-ip", [port({ port: 0 }), port({ port: 70000 }), port({ port: 80, nodePort: 0 })])], ["10.0.0.5"]);
    expect(plan.listeners.size).toBe(0);
    expect(plan.routes.size).toBe(0);
  });

  it("brackets IPv6 listener keys", () => {
    expect(listenerKey("TCP", "fd00::10", 80)).toBe("TCP/[fd00::10]:80");
  });
});
