// Readiness probes run by a real agent with the Docker driver (run through ../shared/ci/in-netns.sh; skipped without
// a dockerd outside CI): one pod of two busybox containers, one probed by httpGet on the port docker published, one
// by exec inside its container. The pod is Ready only while both probes pass; the test flips them by creating and
// removing files inside the containers, and nothing is ever restarted.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Agent } from "../../src/agent/agent.js";
import { ensureBusyboxImage } from "../../src/agent/runtime/busybox-image.js";
import { DockerRuntime } from "../../src/agent/runtime/docker.js";
import { Pod } from "../../src/gen/flotilla/v1/pod.js";
import { agentDataDir, readyNodes, startAgent } from "../support/cluster.js";
import { requireDocker } from "../support/docker.js";
import { eventually, startTestMaster, type TestMaster } from "../support/master.js";

const docker = await requireDocker();
const IMAGE = "flotilla/busybox:latest";
const ADDRESS = "127.0.0.28";
const NODE = "probe-docker-node";
const WAIT_MS = 60_000;

describe.skipIf(docker === undefined)("readiness probes with the docker driver", { timeout: 120_000 }, () => {
  let t: TestMaster;
  let agent: Agent;
  let runtime: DockerRuntime;

  beforeAll(async () => {
    await ensureBusyboxImage(docker!, IMAGE);
    runtime = new DockerRuntime({ nodeName: NODE, docker: docker! });
    t = await startTestMaster({ heartbeatIntervalSeconds: 1 });
    agent = await startAgent(t, { driver: "docker", address: ADDRESS, nodeName: NODE, dataDir: agentDataDir() });
    await eventually(async () => (await readyNodes(t)).includes(NODE), WAIT_MS, "node Ready");
  }, 120_000);
  afterAll(async () => {
    await t?.client.call((s, md, o, cb) => s.pods.deletePod({ namespace: "default", name: "probed", resourceVersion: "" }, md, o, cb)).catch(() => {});
    await agent?.stop();
    for (const c of (await runtime?.list()) ?? []) await runtime.remove(c.id);
    await runtime?.close();
    await t?.stop();
  }, 120_000);

  const getPod = () => t.client.call<Pod>((s, md, o, cb) => s.pods.getPod({ namespace: "default", name: "probed" }, md, o, cb));

  /** Waits until the pod is Running with Ready `pod`, and each container's ready as given. */
  function readiness(pod: "True" | "False", web: boolean, worker: boolean, what: string): Promise<Pod> {
    return eventually(async () => {
      const p = await getPod();
      const ready = Object.fromEntries(p.status?.containerStatuses.map((s) => [s.name, s.ready]) ?? []);
      const condition = p.status?.conditions.find((c) => c.type === "Ready")?.status;
      return p.status?.phase === "Running" && condition === pod && ready.web === web && ready.worker === worker ? p : undefined;
    }, WAIT_MS, what);
  }

  it("makes the pod Ready only while the httpGet and the exec probes both pass", async () => {
    const pod = Pod.fromPartial({
      metadata: { name: "probed" },
      spec: {
        containers: [
          {
            name: "web",
            image: IMAGE,
            command: ["sh", "-c", "mkdir -p /www && exec httpd -f -p 8080 -h /www"],
            ports: [{ name: "http", containerPort: 8080 }],
            readinessProbe: { httpGet: { path: "/ready.txt", port: "http" }, periodSeconds: 1 },
          },
          {
            name: "worker",
            image: IMAGE,
            command: ["sleep", "3600"],
            readinessProbe: { exec: { command: ["test", "-f", "/tmp/ready"] }, periodSeconds: 1, failureThreshold: 1 },
          },
        ],
      },
    });
    await t.client.call<Pod>((s, md, o, cb) => s.pods.createPod(pod, md, o, cb));
    const started = await readiness("False", false, false, "both containers running, neither ready");
    const ids = Object.fromEntries(started.status!.containerStatuses.map((s) => [s.name, s.containerId]));
    const inContainer = (name: string, ...command: string[]) => runtime.exec(ids[name], command, 10_000);

    expect(await inContainer("web", "touch", join("/www", "ready.txt"))).toBe(0);
    await readiness("False", true, false, "web ready by httpGet, the pod still not");
    expect(await inContainer("worker", "touch", "/tmp/ready")).toBe(0);
    await readiness("True", true, true, "both ready, and so the pod");

    expect(await inContainer("worker", "rm", "/tmp/ready")).toBe(0);
    const notReady = await readiness("False", true, false, "the worker not ready by exec, and so the pod");
    expect(notReady.status!.containerStatuses.map((s) => [s.containerId, s.restartCount])).toEqual([[ids.web, 0], [ids.worker, 0]]);
  });
});
