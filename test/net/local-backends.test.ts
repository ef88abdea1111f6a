// preferLocalTargets: this node's backends go to their containers' own addresses; nothing else changes.
import { describe, expect, it } from "vitest";
import { preferLocalTargets, type LocalTarget } from "../../src/net/local-backends.js";
import type { ServiceView } from "../../src/net/types.js";

const services: ServiceView[] = [{
  namespace: "default",
  name: "web",
  clusterIp: "10.96.0.10",
  sessionAffinity: "None",
  ports: [
    {
      name: "http",
      port: 80,
      protocol: "TCP",
      nodePort: 0,
      backends: [
        { address: "172.17.0.1", port: 32001, pod: "default/web-a", node: "n1" },
        { address: "10.0.0.2", port: 32001, pod: "default/web-b", node: "n2" },
        { address: "172.17.0.1", port: 32002, pod: "default/web-c", node: "n1" },
      ],
    },
    { name: "dns", port: 53, protocol: "UDP", nodePort: 0, backends: [{ address: "172.17.0.1", port: 32001, pod: "default/web-a", node: "n1" }] },
  ],
}];

const targets: LocalTarget[] = [
  { pod: "default/web-a", protocol: "TCP", hostPort: 32001, address: "172.17.0.3", port: 8080 },
  // Same host port number, other protocol: only the UDP port's backend may use it.
  { pod: "default/web-a", protocol: "UDP", hostPort: 32001, address: "172.17.0.3", port: 5353 },
];

describe("preferLocalTargets", () => {
  it("rewrites this node's backends that a running container publishes, and marks them", () => {
    const [svc] = preferLocalTargets(services, "n1", targets);
    expect(svc!.ports[0]!.backends).toEqual([
      { address: "172.17.0.3", port: 8080, pod: "default/web-a", node: "n1", podNetwork: true },
      { address: "10.0.0.2", port: 32001, pod: "default/web-b", node: "n2" },
      // No running container known for it (yet): its published port still works.
      { address: "172.17.0.1", port: 32002, pod: "default/web-c", node: "n1" },
    ]);
    expect(svc!.ports[1]!.backends).toEqual([{ address: "172.17.0.3", port: 5353, pod: "default/web-a", node: "n1", podNetwork: true }]);
  });

  it("leaves other nodes' backends alone even when a pod name and port match, and never mutates its input", () => {
    const before = JSON.stringify(services);
    const [svc] = preferLocalTargets(services, "n2", targets);
    expect(svc!.ports[0]!.backends.some((b) => b.podNetwork)).toBe(false);
    expect(JSON.stringify(services)).toBe(before);
  });
});
