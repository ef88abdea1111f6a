// The whole path with the process driver: a real master and a real agent in this process, pods as real host
// processes answering HTTP on 127.0.0.x ports.
import { cpus } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, JoinRefusedError } from "../../src/agent/agent.js";
import { ProcessRuntime } from "../../src/agent/runtime/process.js";
import type { Node } from "../../src/gen/flotilla/v1/node.js";
import { agentDataDir, allAnswer, applyDeployment, listPods, readyNodes, scaleDeployment, startAgent } from "../support/cluster.js";
import { eventually, startTestMaster, type TestMaster } from "../support/master.js";
import { join } from "node:path";

const ADDRESS = "127.0.0.7";
const NODE = "proc-node";

const webServer = (name: string, replicas: number) => ({
  metadata: { name },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
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

describe("agent with the process driver", () => {
  let t: TestMaster;
  let agent: Agent;
  const dataDir = agentDataDir();

  beforeAll(async () => {
    t = await startTestMaster({ heartbeatIntervalSeconds: 1, nodeGracePeriodSeconds: 3 });
    agent = await startAgent(t, { driver: "process", address: ADDRESS, nodeName: NODE, dataDir });
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

  it("joins, and its node is Ready with the machine's real capacity", async () => {
    await eventually(async () => (await readyNodes(t)).includes(NODE), 10_000, "node Ready");
    const node = await t.client.call<Node>((s, md, o, cb) => s.nodes.getNode({ namespace: "", name: NODE }, md, o, cb));
    expect(node.status?.capacity.cpu).toBe(String(cpus().length));
    expect(node.status?.nodeInfo?.cpuCores).toBe(cpus().length);
    expect(node.status?.addresses).toContainEqual({ type: "InternalIP", address: ADDRESS });
    expect(node.status?.nodeInfo?.containerRuntime).toBe("process");
  });

  it("refuses a wrong join token plainly", async () => {
    const impostor = new Agent({ servers: [t.master.address], token: "abcdef.0123456789abcdef", dataDir: agentDataDir(), driver: "process", address: "127.0.0.8", nodeName: "impostor" });
    await expect(impostor.start()).rejects.toThrow(JoinRefusedError);
    await expect(impostor.start()).rejects.toThrow(/refused the join token: UNAUTHENTICATED/);
    await impostor.stop();
  });

  it("runs a 3-replica deployment whose processes answer on their published ports", async () => {
    await applyDeployment(t, webServer("web", 3));
    const bodies = await allAnswer(t, "app=web", 3);
    expect([...bodies.entries()].every(([pod, body]) => pod === body)).toBe(true);
  });

  it("replaces a process killed from outside", async () => {
    const [victim] = await listPods(t, "app=web");
    const runtime = new ProcessRuntime({ nodeName: NODE, stateDir: join(dataDir, "process") });
    const container = (await runtime.list()).find((c) => c.podUid === victim.metadata!.uid && c.state === "running")!;
    const pid = Number((await import("node:fs")).readFileSync(join(dataDir, "process", container.id, "pid"), "utf8").split(" ")[0]);
    process.kill(-pid, "SIGKILL");
    await eventually(async () => {
      const pod = (await listPods(t, "app=web")).find((p) => p.metadata!.uid === victim.metadata!.uid);
      return pod && pod.status!.containerStatuses[0].restartCount >= 1 && pod.status!.phase === "Running";
    }, 30_000, "the killed process to be restarted");
    await allAnswer(t, "app=web", 3);
  });

  it("adopts its running processes after a restart: no duplicates, no restarts", async () => {
    const runtime = new ProcessRuntime({ nodeName: NODE, stateDir: join(dataDir, "process") });
    const before = (await runtime.list()).filter((c) => c.state === "running").map((c) => c.id).sort();
    await agent.stop();
    agent = await startAgent(t, { driver: "process", address: ADDRESS, nodeName: NODE, dataDir, token: "" });
    await agent.settle();
    await new Promise((r) => setTimeout(r, 1500));
    await agent.settle();
    const after = (await runtime.list()).filter((c) => c.state === "running").map((c) => c.id).sort();
    expect(after).toEqual(before);
    expect(after).toHaveLength(3);
  });

  it("scales down to 1 and up to 2", async () => {
    await scaleDeployment(t, "web", 1);
    await allAnswer(t, "app=web", 1);
    const runtime = new ProcessRuntime({ nodeName: NODE, stateDir: join(dataDir, "process") });
    await eventually(async () => (await runtime.list()).length === 1, 30_000, "surplus processes removed");
    await scaleDeployment(t, "web", 2);
    await allAnswer(t, "app=web", 2);
  });

  it("marks the node NotReady when its agent stops heartbeating, and Ready again when it returns", async () => {
    await agent.stop();
    await eventually(async () => !(await readyNodes(t)).includes(NODE), 20_000, "node NotReady");
    const node = await t.client.call<Node>((s, md, o, cb) => s.nodes.getNode({ namespace: "", name: NODE }, md, o, cb));
    expect(node.status?.conditions.find((c) => c.type === "Ready")).toMatchObject({ status: "Unknown", reason: "NodeStatusUnknown" });
    agent = await startAgent(t, { driver: "process", address: ADDRESS, nodeName: NODE, dataDir, token: "" });
    await eventually(async () => (await readyNodes(t)).includes(NODE), 20_000, "node Ready again");
  });

  it("serves its own metrics, counting container starts", async () => {
    const metered = await startAgent(t, { driver: "process", address: "127.0.0.9", nodeName: "metered", metricsListen: "127.0.0.9:0" });
    const text = await (await fetch(`http://${metered.metricsAddress}/metrics`)).text();
    expect(text).toContain("# TYPE flotilla_agent_container_starts_total counter");
    expect(text).toMatch(/flotilla_agent_pods 0/);
    await metered.stop();
    await t.client.call((s, md, o, cb) => s.nodes.deleteNode({ namespace: "", name: "metered", resourceVersion: "" }, md, o, cb));
  });

  it("lets a rebuilt machine with the same hostname join again and take its pods back", async () => {
    const before = await t.client.call<Node>((s, md, o, cb) => s.nodes.getNode({ namespace: "", name: NODE }, md, o, cb));
    await agent.stop();
    // The machine is wiped: its processes and its data directory are gone.
    const runtime = new ProcessRuntime({ nodeName: NODE, stateDir: join(dataDir, "process") });
    for (const c of await runtime.list()) await runtime.stop(c.id, 1).then(() => runtime.remove(c.id));
    const rebuiltDir = agentDataDir();
    agent = await startAgent(t, { driver: "process", address: ADDRESS, nodeName: NODE, dataDir: rebuiltDir });
    const after = await t.client.call<Node>((s, md, o, cb) => s.nodes.getNode({ namespace: "", name: NODE }, md, o, cb));
    expect(after.metadata?.uid).toBe(before.metadata?.uid);
    await eventually(async () => (await readyNodes(t)).includes(NODE), 20_000, "the rebuilt node Ready");
    await allAnswer(t, "app=web", 2);
    const rebuilt = new ProcessRuntime({ nodeName: NODE, stateDir: join(rebuiltDir, "process") });
    expect((await rebuilt.list()).filter((c) => c.state === "running")).toHaveLength(2);
    for (const c of await rebuilt.list()) await rebuilt.stop(c.id, 1).then(() => rebuilt.remove(c.id));
  });
});
