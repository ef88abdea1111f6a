// Services with real containers (in the test run's network namespace, with its own dockerd): a real master and an
// agent with the Docker driver and the userspace proxy, whose node address is the Docker bridge's gateway, so that
// containers reach it. A 3-replica busybox httpd behind a Service: its VIP answers from the node itself, and from
// inside another pod's container by the service's short DNS name (the agent gives containers the node's cluster DNS
// and their namespace's search list), every replica answering.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Agent } from "../../src/agent/agent.js";
import { ensureBusyboxImage } from "../../src/agent/runtime/busybox-image.js";
import { MANAGED_LABEL, NODE_LABEL, POD_NAME_LABEL } from "../../src/agent/runtime/runtime.js";
import { spawnSync } from "node:child_process";
import { Pod } from "../../src/gen/flotilla/v1/pod.js";
import { Service } from "../../src/gen/flotilla/v1/service.js";
import { requireDocker } from "../support/docker.js";
import { allAnswer, applyDeployment, scaleDeployment, startAgent } from "../support/cluster.js";
import { getOnNewConnection } from "../support/http.js";
import { eventually, startTestMaster, type TestMaster } from "../support/master.js";

const IMAGE = "flotilla/busybox:latest";
const NODE = "svc-docker";
const docker = await requireDocker();
const isRoot = process.getuid?.() === 0;

const httpd = (replicas: number) => ({
  metadata: { name: "web" },
  spec: {
    replicas,
    selector: { matchLabels: { app: "web" } },
    template: {
      metadata: { labels: { app: "web" } },
      spec: {
        containers: [{
          name: "httpd",
          image: IMAGE,
          command: ["/bin/sh", "-c", "mkdir -p /www && echo $FLOTILLA_POD_NAME > /www/index.html && exec httpd -f -p 8080 -h /www"],
          ports: [{ name: "http", containerPort: 8080 }],
        }],
      },
    },
  },
});

// Root: the VIPs (10.96.0.0/16) go on the agent's flotilla0 interface, and cluster DNS listens on port 53.
describe.skipIf(!docker || (!isRoot && process.env.CI !== "true"))("services with Docker containers", () => {
  let t: TestMaster;
  let agent: Agent;
  let gateway = "";
  const d = docker!;

  beforeAll(async () => {
    if (!isRoot) throw new Error("this test binds port 53 and manages flotilla0: run it as root (CI does)");
    await ensureBusyboxImage(d, IMAGE);
    // The bridge's address on this side: what containers on the default network reach the node by.
    // (`ip`, not os.networkInterfaces(): that leaves out a bridge with no container attached yet, which is down.)
    const shown = spawnSync("ip", ["-j", "-4", "addr", "show", "dev", "docker0"], { encoding: "utf8" });
    gateway = shown.status === 0 ? ((JSON.parse(shown.stdout) as { addr_info?: { local: string }[] }[])[0]?.addr_info?.[0]?.local ?? "") : "";
    if (!gateway) throw new Error("no docker0 interface with an IPv4 address (is dockerd running in this namespace?)");
    t = await startTestMaster({ serviceCidr: "10.96.0.0/16", heartbeatIntervalSeconds: 1 });
    agent = await startAgent(t, { driver: "docker", address: gateway, nodeName: NODE, network: { proxyMode: "userspace", dnsListen: `${gateway}:53` } });
  }, 120_000);

  afterAll(async () => {
    await scaleDeployment(t, "web", 0).catch(() => {});
    await t?.client.call((s, md, o, cb) => s.pods.deletePod({ namespace: "default", name: "client", resourceVersion: "" }, md, o, cb)).catch(() => {});
    await agent?.settle();
    await agent?.stop();
    for (const c of await d.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`] } })) {
      if (c.Labels[NODE_LABEL] === NODE) await d.getContainer(c.Id).remove({ force: true }).catch(() => {});
    }
    await t?.stop();
  }, 120_000);

  it("answers the VIP from the node and, by the service's short name, from inside another container", async () => {
    await applyDeployment(t, httpd(3));
    const bodies = await allAnswer(t, "app=web", 3, 90_000);
    const replicas = [...bodies.values()].sort();
    const svc = await t.client.call<Service>((s, md, o, cb) =>
      s.services.createService(Service.fromPartial({ metadata: { name: "web" }, spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: "http" }] } }), md, o, cb),
    );
    const vip = svc.spec!.clusterIp;

    // From the node: new connections each time (the proxy balances connections).
    const fromNode = await eventually(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 30; i++) {
        const body = (await getOnNewConnection(`http://${vip}/`).catch(() => undefined))?.body;
        if (body) seen.add(body);
      }
      return seen.size === 3 ? [...seen].sort() : undefined;
    }, 60_000, "all 3 replicas through the VIP from the node");
    expect(fromNode).toEqual(replicas);

    // From inside a pod: `web` resolves through the search list to the VIP, and every replica answers.
    await t.client.call((s, md, o, cb) =>
      s.pods.createPod(
        Pod.fromPartial({
          metadata: { name: "client" },
          spec: {
            restartPolicy: "Never",
            containers: [{ name: "client", image: IMAGE, command: ["/bin/sh", "-c", "nslookup web; for i in $(seq 30); do wget -qO- http://web/; done"] }],
          },
        }),
        md,
        o,
        cb,
      ),
    );
    const logs = await eventually(async () => {
      const list = await d.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`, `${POD_NAME_LABEL}=client`] } });
      const c = list[0];
      if (!c || c.State !== "exited") return undefined;
      const inspect = await d.getContainer(c.Id).inspect();
      const raw = (await d.getContainer(c.Id).logs({ stdout: true, stderr: true })) as unknown as Buffer;
      return { text: raw.toString("latin1"), resolvConf: inspect.HostConfig };
    }, 90_000, "the client pod to finish");
    expect(logs.resolvConf.Dns).toEqual([gateway]);
    expect(logs.resolvConf.DnsSearch).toEqual(["default.svc.flotilla.local", "svc.flotilla.local", "flotilla.local"]);
    expect(logs.text).toContain(vip);
    for (const name of replicas) expect(logs.text).toContain(name);
  }, 240_000);
});
