// An in-process cluster for integration tests: a real master and real agents in this process, talking gRPC over
// 127.0.0.x, with real runtimes (processes or Docker).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, type AgentOptions } from "../../src/agent/agent.js";
import { createLogger } from "../../src/common/logger.js";
import type { CreateTokenResponse } from "../../src/gen/flotilla/v1/cluster.js";
import { Deployment } from "../../src/gen/flotilla/v1/deployment.js";
import type { NodeList } from "../../src/gen/flotilla/v1/node.js";
import type { PodList } from "../../src/gen/flotilla/v1/pod.js";
import { eventually, type TestMaster } from "./master.js";
import type { Pod } from "../../src/gen/flotilla/v1/pod.js";

export const FAST_BACKOFF = { baseMs: 200, maxMs: 2000, resetAfterMs: 60_000 };

export async function createJoinToken(t: TestMaster): Promise<string> {
  const res = await t.client.call<CreateTokenResponse>((s, md, o, cb) => s.cluster.createToken({ ttlSeconds: 600n, description: "test" }, md, o, cb));
  return res.token;
}

export function agentDataDir(): string {
  return mkdtempSync(join(tmpdir(), "flotilla-agent-"));
}

export async function startAgent(t: TestMaster, options: Partial<AgentOptions> & Pick<AgentOptions, "driver" | "address" | "nodeName">): Promise<Agent> {
  const agent = new Agent({
    servers: [t.master.address],
    token: options.token ?? (await createJoinToken(t)),
    dataDir: options.dataDir ?? agentDataDir(),
    backoff: FAST_BACKOFF,
    // FLOTILLA_TEST_LOG=debug shows the agent's log while a test runs.
    log: process.env.FLOTILLA_TEST_LOG ? createLogger("agent", options.nodeName ?? "", process.env.FLOTILLA_TEST_LOG) : undefined,
    ...options,
  });
  await agent.start();
  return agent;
}

export async function listPods(t: TestMaster, labelSelector = ""): Promise<Pod[]> {
  return (await t.client.call<PodList>((s, md, o, cb) => s.pods.listPods({ namespace: "default", labelSelector, fieldSelector: "" }, md, o, cb))).items;
}

export async function readyNodes(t: TestMaster): Promise<string[]> {
  const nodes = await t.client.call<NodeList>((s, md, o, cb) => s.nodes.listNodes({ namespace: "", labelSelector: "", fieldSelector: "" }, md, o, cb));
  return nodes.items.filter((n) => n.status?.conditions.some((c) => c.type === "Ready" && c.status === "True")).map((n) => n.metadata!.name);
}

export async function applyDeployment(t: TestMaster, json: Record<string, unknown>): Promise<Deployment> {
  return t.client.call<Deployment>((s, md, o, cb) => s.deployments.applyDeployment(Deployment.fromJSON(json), md, o, cb));
}

export async function scaleDeployment(t: TestMaster, name: string, replicas: number): Promise<void> {
  await t.client.call((s, md, o, cb) => s.cluster.scale({ kind: "Deployment", namespace: "default", name, replicas }, md, o, cb));
}

/** GETs every running pod's first published port; resolves with the bodies once all `count` answer. */
export async function allAnswer(t: TestMaster, selector: string, count: number, timeoutMs = 60_000): Promise<Map<string, string>> {
  return eventually(async () => {
    const pods = (await listPods(t, selector)).filter((p) => p.status?.phase === "Running");
    if (pods.length !== count) return undefined;
    const bodies = new Map<string, string>();
    for (const p of pods) {
      const port = p.status!.ports[0];
      if (!port) return undefined;
      const res = await fetch(`http://${port.hostIp}:${port.hostPort}/`, { signal: AbortSignal.timeout(2000) });
      bodies.set(p.metadata!.name, (await res.text()).trim());
    }
    return bodies;
  }, timeoutMs, `${count} pods matching ${selector} to answer`);
}

export function cleanup(dirs: string[]): void {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
