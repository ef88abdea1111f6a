// Services end to end without root, as `flotilla up --driver process` runs them: a real master (service range in
// 127.0.0.0/8, where any address binds with no set-up) and a real agent with the process driver and the userspace
// proxy, cluster DNS and ingress, in this process; pods are real processes answering HTTP with their own name.
// Shows: the VIP and the NodePort spread requests over every ready pod; DNS answers the service's name with the
// VIP; the ingress routes by host and path and says 404/503 plainly; a deleted pod stops receiving requests while
// requests keep succeeding; scaled to 6, all 6 receive traffic.
import { freePort } from "../support/ports.js";
import { promises as dns } from "node:dns";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Agent } from "../../src/agent/agent.js";
import { ProcessRuntime } from "../../src/agent/runtime/process.js";
import { Ingress } from "../../src/gen/flotilla/v1/ingress.js";
import { Service } from "../../src/gen/flotilla/v1/service.js";
import { agentDataDir, applyDeployment, allAnswer, listPods, scaleDeployment, startAgent } from "../support/cluster.js";
import { getOnNewConnection } from "../support/http.js";
import { eventually, startTestMaster, type TestMaster } from "../support/master.js";

const ADDRESS = "127.0.0.17";
const NODE = "svc-node";

const web = (replicas: number) => ({
  metadata: { name: "web" },
  spec: {
    replicas,
    selector: { matchLabels: { app: "web" } },
    template: {
      metadata: { labels: { app: "web" } },
      spec: {
        containers: [{
          name: "web",
          command: ["node", "-e", "require('http').createServer((q,s)=>s.end(process.env.FLOTILLA_POD_NAME)).listen(+process.env.PORT, process.env.HOST)"],
          ports: [{ name: "http", containerPort: 8080 }],
        }],
      },
    },
  },
});

const get = getOnNewConnection;

/** n requests; the pod names that answered, with counts. Any failure fails the call. */
async function spread(url: string, n: number): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const { body } = await get(url);
    seen.set(body, (seen.get(body) ?? 0) + 1);
  }
  return seen;
}

describe("services with the process driver and the userspace proxy", () => {
  let t: TestMaster;
  let agent: Agent;
  const dataDir = agentDataDir();
  let dnsPort = 0;
  let ingressPort = 0;
  let vip = "";
  let nodePort = 0;

  beforeAll(async () => {
    t = await startTestMaster({ serviceCidr: "127.96.0.0/24", heartbeatIntervalSeconds: 1 });
    dnsPort = await freePort("127.0.0.53");
    ingressPort = await freePort(ADDRESS);
    agent = await startAgent(t, {
      driver: "process",
      address: ADDRESS,
      nodeName: NODE,
      dataDir,
      network: { proxyMode: "userspace", dnsListen: `127.0.0.53:${dnsPort}`, ingressPort },
    });
  });
  afterAll(async () => {
    await scaleDeployment(t, "web", 0).catch(() => {});
    await agent?.settle();
    const runtime = new ProcessRuntime({ nodeName: NODE, stateDir: join(dataDir, "process") });
    for (const c of await runtime.list()) {
      await runtime.stop(c.id, 1);
      await runtime.remove(c.id);
    }
    await agent?.stop();
    await t.stop();
  });

  it("spreads requests to the VIP and the NodePort over all 3 pods", async () => {
    expect(agent.network?.proxyMode).toBe("userspace");
    await applyDeployment(t, web(3));
    await allAnswer(t, "app=web", 3);
    const svc = await t.client.call<Service>((s, md, o, cb) =>
      s.services.createService(Service.fromPartial({ metadata: { name: "web" }, spec: { selector: { app: "web" }, type: "NodePort", ports: [{ port: 80, targetPort: "http" }] } }), md, o, cb),
    );
    vip = svc.spec!.clusterIp;
    nodePort = svc.spec!.ports[0]!.nodePort;
    expect(vip).toMatch(/^127\.96\.0\.\d+$/);
    const viaVip = await eventually(async () => {
      const seen = await spread(`http://${vip}/`, 30).catch(() => undefined);
      return seen && seen.size === 3 ? seen : undefined;
    }, 30_000, "all 3 pods to answer through the VIP");
    expect([...viaVip.values()].reduce((a, b) => a + b)).toBe(30);
    const viaNodePort = await spread(`http://${ADDRESS}:${nodePort}/`, 30);
    expect(viaNodePort.size).toBe(3);
  });

  it("answers the service's DNS name with its VIP, and SRV for its named port", async () => {
    const resolver = new dns.Resolver();
    resolver.setServers([`127.0.0.53:${dnsPort}`]);
    expect(await resolver.resolve4("web.default.svc.flotilla.local")).toEqual([vip]);
    await expect(resolver.resolve4("nope.default.svc.flotilla.local")).rejects.toMatchObject({ code: "ENOTFOUND" });
  });

  it("routes HTTP through the ingress by host and path, with 404 and 503", async () => {
    await t.client.call((s, md, o, cb) =>
      s.ingresses.createIngress(
        Ingress.fromPartial({
          metadata: { name: "site" },
          spec: { rules: [{ host: "web.test", paths: [{ pathPrefix: "/", backend: { service: "web", port: "80" } }, { pathPrefix: "/empty", backend: { service: "empty", port: "80" } }] }] },
        }),
        md,
        o,
        cb,
      ),
    );
    const base = `http://${ADDRESS}:${ingressPort}`;
    const routed = await eventually(async () => {
      const r = await get(`${base}/`, "web.test").catch(() => undefined);
      return r?.status === 200 ? r : undefined;
    }, 10_000, "the ingress to route");
    expect(routed.body).toMatch(/^web-/);
    expect(await get(`${base}/`, "other.test")).toMatchObject({ status: 404, body: expect.stringContaining('no ingress rule matches host "other.test"') });
    expect(await get(`${base}/empty/x`, "web.test")).toMatchObject({ status: 503, body: expect.stringContaining("no ready endpoint for service default/empty") });
  });

  it("stops sending to a deleted pod while requests keep succeeding, and spreads over 6 after a scale-up", async () => {
    const victim = (await listPods(t, "app=web"))[0]!.metadata!.name;
    await t.client.call((s, md, o, cb) => s.pods.deletePod({ namespace: "default", name: victim, resourceVersion: "" }, md, o, cb));
    // Every request succeeds throughout (spread() throws on a failure); eventually the victim gets none.
    await eventually(async () => {
      const seen = await spread(`http://${vip}/`, 20);
      return !seen.has(victim) && seen.size >= 2;
    }, 30_000, `${victim} to stop receiving requests`);
    const after = await spread(`http://${vip}/`, 30);
    expect(after.has(victim)).toBe(false);

    await scaleDeployment(t, "web", 6);
    await allAnswer(t, "app=web", 6);
    const six = await eventually(async () => {
      const seen = await spread(`http://${vip}/`, 60);
      return seen.size === 6 ? seen : undefined;
    }, 30_000, "all 6 pods to receive traffic");
    expect(six.size).toBe(6);
  });
});
