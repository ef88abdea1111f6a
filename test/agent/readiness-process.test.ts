// Readiness probes run by a real agent with the process driver, against a real master: each pod is a host process
// whose readiness follows a file the test creates and removes, probed by httpGet, tcpSocket or exec every second.
// The pod's Ready condition (and the service's endpoints) must follow the file, while the process keeps running:
// a failing readiness probe never restarts anything.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Agent } from "../../src/agent/agent.js";
import { ProcessRuntime } from "../../src/agent/runtime/process.js";
import { Pod, type Probe } from "../../src/gen/flotilla/v1/pod.js";
import { Service, type Endpoints } from "../../src/gen/flotilla/v1/service.js";
import { agentDataDir, readyNodes, startAgent } from "../support/cluster.js";
import { eventually, startTestMaster, type TestMaster } from "../support/master.js";

const ADDRESS = "127.0.0.27";
const NODE = "probe-node";
const WAIT_MS = 30_000;

/** Answers /ready with 200 while $READY_FILE exists and 503 otherwise. */
const HTTP_SERVER =
  "const fs=require('fs');require('http').createServer((q,s)=>{s.statusCode=q.url==='/ready'&&fs.existsSync(process.env.READY_FILE)?200:503;s.end()}).listen(+process.env.PORT,process.env.HOST)";
/** Listens on $PORT only while $READY_FILE exists. */
const TCP_SERVER =
  "const fs=require('fs'),net=require('net');let srv;setInterval(()=>{const want=fs.existsSync(process.env.READY_FILE);" +
  "if(want&&!srv){srv=net.createServer(c=>c.end()).listen(+process.env.PORT,process.env.HOST)}else if(!want&&srv){srv.close();srv=undefined}},100)";

describe("readiness probes with the process driver", () => {
  let t: TestMaster;
  let agent: Agent;
  const dataDir = agentDataDir();
  const files = mkdtempSync(join(tmpdir(), "flotilla-ready-"));

  beforeAll(async () => {
    t = await startTestMaster({ heartbeatIntervalSeconds: 1 });
    agent = await startAgent(t, { driver: "process", address: ADDRESS, nodeName: NODE, dataDir });
    await eventually(async () => (await readyNodes(t)).includes(NODE), WAIT_MS, "node Ready");
  });
  afterAll(async () => {
    for (const name of ["http-probed", "tcp-probed", "exec-probed"]) {
      await t.client.call((s, md, o, cb) => s.pods.deletePod({ namespace: "default", name, resourceVersion: "" }, md, o, cb)).catch(() => {});
    }
    await agent?.settle();
    const runtime = new ProcessRuntime({ nodeName: NODE, stateDir: join(dataDir, "process") });
    for (const c of await runtime.list()) {
      await runtime.stop(c.id, 1);
      await runtime.remove(c.id);
    }
    await agent?.stop();
    await t.stop();
    rmSync(files, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function createPod(name: string, command: string[], probe: Partial<Probe>, readyFile: string): Promise<void> {
    const pod = Pod.fromPartial({
      metadata: { name, labels: { app: name } },
      spec: {
        containers: [{
          name: "main",
          image: "ignored",
          command,
          env: [{ name: "READY_FILE", value: readyFile }],
          ports: [{ name: "http", containerPort: 8080 }],
          readinessProbe: { periodSeconds: 1, ...probe },
        }],
      },
    });
    await t.client.call<Pod>((s, md, o, cb) => s.pods.createPod(pod, md, o, cb));
  }

  const getPod = (name: string) => t.client.call<Pod>((s, md, o, cb) => s.pods.getPod({ namespace: "default", name }, md, o, cb));
  const readyCondition = (pod: Pod) => pod.status?.conditions.find((c) => c.type === "Ready")?.status;

  /** Waits until the pod is Running with its Ready condition at `want`, and returns it. */
  function podReady(name: string, want: "True" | "False", what: string): Promise<Pod> {
    return eventually(async () => {
      const pod = await getPod(name);
      return pod.status?.phase === "Running" && readyCondition(pod) === want ? pod : undefined;
    }, WAIT_MS, `${name}: ${what}`);
  }

  /** The container still runs as the same process, never restarted, and its status agrees with the pod's. */
  function expectSameRunningContainer(pod: Pod, containerId: string, ready: boolean): void {
    const [status] = pod.status!.containerStatuses;
    expect(status.containerId).toBe(containerId);
    expect(status.restartCount).toBe(0);
    expect(status.state?.running).toBeDefined();
    expect(status.ready).toBe(ready);
  }

  it("httpGet: Ready follows the readiness path, the endpoints follow Ready, and the process keeps running", async () => {
    const readyFile = join(files, "http");
    await t.client.call<Service>((s, md, o, cb) =>
      s.services.createService(Service.fromPartial({ metadata: { name: "http-probed" }, spec: { selector: { app: "http-probed" }, ports: [{ port: 80, targetPort: "http" }] } }), md, o, cb),
    );
    const endpoints = async () => {
      const e = await t.client.call<Endpoints>((s, md, o, cb) => s.endpoints.getEndpoints({ namespace: "default", name: "http-probed" }, md, o, cb));
      return { ready: e.ports[0]?.ready.map((a) => a.pod) ?? [], notReady: e.ports[0]?.notReady.map((a) => a.pod) ?? [] };
    };
    await createPod("http-probed", ["node", "-e", HTTP_SERVER], { httpGet: { path: "/ready", port: "http" } }, readyFile);

    // Running, and answering (503), but not ready: running alone is not enough with a probe.
    const running = await podReady("http-probed", "False", "Running but not ready");
    const [port] = running.status!.ports;
    await eventually(async () => (await fetch(`http://${port.hostIp}:${port.hostPort}/ready`)).status === 503, WAIT_MS, "the process to answer 503");
    const containerId = running.status!.containerStatuses[0].containerId;
    expectSameRunningContainer(await getPod("http-probed"), containerId, false);
    expect(readyCondition(await getPod("http-probed"))).toBe("False");
    expect(await eventually(async () => ((await endpoints()).notReady.length === 1 ? endpoints() : undefined), WAIT_MS, "a not-ready endpoint")).toEqual({ ready: [], notReady: ["http-probed"] });

    writeFileSync(readyFile, "");
    const ready = await podReady("http-probed", "True", "ready once the file exists");
    expectSameRunningContainer(ready, containerId, true);
    await eventually(async () => (await endpoints()).ready.includes("http-probed"), WAIT_MS, "the endpoint to turn ready");

    // Probes that keep passing change nothing, so they write no status.
    const version = ready.metadata!.resourceVersion;
    await new Promise((resolve) => setTimeout(resolve, 3500));
    expect((await getPod("http-probed")).metadata!.resourceVersion).toBe(version);

    rmSync(readyFile);
    expectSameRunningContainer(await podReady("http-probed", "False", "not ready once the file is gone"), containerId, false);
    await eventually(async () => (await endpoints()).notReady.includes("http-probed"), WAIT_MS, "the endpoint to turn not ready");

    writeFileSync(readyFile, "");
    expectSameRunningContainer(await podReady("http-probed", "True", "ready again once the file is back"), containerId, true);
  });

  it("tcpSocket: ready while the process listens on the probed port", async () => {
    const readyFile = join(files, "tcp");
    await createPod("tcp-probed", ["node", "-e", TCP_SERVER], { tcpSocket: { port: "8080" } }, readyFile);

    const running = await podReady("tcp-probed", "False", "Running but not ready");
    const containerId = running.status!.containerStatuses[0].containerId;

    writeFileSync(readyFile, "");
    expectSameRunningContainer(await podReady("tcp-probed", "True", "ready once it listens"), containerId, true);

    rmSync(readyFile);
    expectSameRunningContainer(await podReady("tcp-probed", "False", "not ready once it stops listening"), containerId, false);
  });

  it("exec: ready while the command in the container exits 0", async () => {
    const readyFile = join(files, "exec");
    await createPod("exec-probed", ["sleep", "3600"], { exec: { command: ["test", "-f", readyFile] } }, readyFile);

    const running = await podReady("exec-probed", "False", "Running but not ready");
    const containerId = running.status!.containerStatuses[0].containerId;
    expect(existsSync(readyFile)).toBe(false);

    writeFileSync(readyFile, "");
    expectSameRunningContainer(await podReady("exec-probed", "True", "ready once test -f passes"), containerId, true);

    rmSync(readyFile);
    expectSameRunningContainer(await podReady("exec-probed", "False", "not ready once test -f fails"), containerId, false);
  });
});
