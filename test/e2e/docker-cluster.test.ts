// End to end, as a user runs it: real `flotilla master` and `flotilla agent` processes, the real CLI, and real
// containers in the real dockerd (inside the test run's network namespace). Pods are reached only through the
// ports they publish on 127.0.0.x.
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBusyboxImage } from "../../src/agent/runtime/busybox-image.js";
import { NODE_LABEL, MANAGED_LABEL } from "../../src/agent/runtime/runtime.js";
import { Pod } from "../../src/gen/flotilla/v1/pod.js";
import { requireDocker } from "../support/docker.js";
import { eventually } from "../support/master.js";
import { cli, daemon, requireBuild, type Daemon } from "../support/processes.js";

const IMAGE = "flotilla/busybox:latest";
const PORT = 17443;
const AGENTS = [
  { name: "e2e-a", address: "127.0.0.11" },
  { name: "e2e-b", address: "127.0.0.12" },
];

const docker = await requireDocker();

const httpd = (replicas: number) => `
apiVersion: flotilla.io/v1
kind: Deployment
metadata:
  name: httpd
spec:
  replicas: ${replicas}
  selector:
    matchLabels: { app: httpd }
  template:
    metadata:
      labels: { app: httpd }
    spec:
      containers:
        - name: web
          image: ${IMAGE}
          command: ["/bin/sh", "-c", "echo started $FLOTILLA_POD_NAME; mkdir -p /www && echo $FLOTILLA_POD_NAME > /www/index.html && exec httpd -f -v -p 8080 -h /www"]
          ports: [{ name: http, containerPort: 8080 }]
          resources:
            requests: { cpu: 10m, memory: 8Mi }
            limits: { cpu: 500m, memory: 32Mi }
`;

describe.skipIf(!docker)("a cluster of real processes and real containers", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-e2e-"));
  const config = join(dir, "flotilla.yaml");
  const agents = new Map<string, Daemon>();
  let master: Daemon;
  let token = "";
  const d = docker!;

  const running = async (node?: string) =>
    d.listContainers({ filters: { label: [`${MANAGED_LABEL}=true`, ...(node ? [`${NODE_LABEL}=${node}`] : AGENTS.map(() => "")).filter(Boolean)] } })
      .then((list) => list.filter((c) => AGENTS.some((a) => c.Labels[NODE_LABEL] === a.name)));
  const pods = (selector = "app=httpd"): Pod[] => {
    const r = cli(config, "get", "pods", "-l", selector, "-o", "json");
    if (r.code !== 0) throw new Error(r.stderr);
    return (JSON.parse(r.stdout).items as unknown[]).map((p) => Pod.fromJSON(p));
  };
  const answers = async (count: number) =>
    eventually(async () => {
      const live = pods().filter((p) => p.status?.phase === "Running");
      if (live.length !== count) return undefined;
      const bodies = await Promise.all(live.map(async (p) => {
        const port = p.status!.ports[0];
        const res = await fetch(`http://${port.hostIp}:${port.hostPort}/`, { signal: AbortSignal.timeout(2000) });
        return [p.metadata!.name, (await res.text()).trim()] as const;
      }));
      return bodies;
    }, 60_000, `${count} httpd pods answering`);
  const startAgent = (a: (typeof AGENTS)[number], withToken = token) =>
    daemon(["agent", "--server", `127.0.0.1:${PORT}`, "--token", withToken, "--driver", "docker", "--address", a.address, "--name", a.name, "--data", join(dir, a.name), "--proxy-mode", "off"], /joined/);

  beforeAll(async () => {
    requireBuild();
    await ensureBusyboxImage(d, IMAGE);
    master = await daemon(["master", "--listen", `127.0.0.1:${PORT}`, "--data", join(dir, "master"), "--heartbeat-interval", "1", "--node-grace-period", "4", "--pod-eviction-timeout", "3600"], /master listening/);
    writeFileSync(config, `servers: ["127.0.0.1:${PORT}"]\ntoken: ${readFileSync(join(dir, "master", "admin.token"), "utf8").trim()}\n`);
    const created = cli(config, "token", "create");
    expect(created.code).toBe(0);
    token = created.stdout.trim();
  });

  afterAll(async () => {
    for (const a of agents.values()) await a.kill();
    await master?.kill();
    for (const c of await running()) await d.getContainer(c.Id).remove({ force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses an agent with a bad token, saying so plainly", async () => {
    const bad = startAgent(AGENTS[0], "abcdef.0123456789abcdef");
    await expect(bad).rejects.toThrow(/refused the join token: UNAUTHENTICATED/);
  });

  it("joins agents whose nodes are Ready with real capacity", async () => {
    for (const a of AGENTS) agents.set(a.name, await startAgent(a));
    const nodes = await eventually(() => {
      const r = cli(config, "get", "nodes", "-o", "json");
      const items = JSON.parse(r.stdout).items as { metadata: { name: string }; status: { capacity: Record<string, string>; conditions: { type: string; status: string }[] } }[];
      return items.filter((n) => n.status.conditions.some((c) => c.type === "Ready" && c.status === "True")).length === 2 && items;
    }, 20_000, "2 Ready nodes");
    for (const n of nodes) expect(n.status.capacity.cpu).toBe(String(cpus().length));
    const table = cli(config, "get", "nodes").stdout;
    expect(table).toMatch(/^NAME\s+STATUS\s+AGE\s+VERSION/);
    expect(table).toMatch(/e2e-a\s+Ready/);
  });

  it("serves a 3-replica httpd Deployment on 3 published ports", async () => {
    writeFileSync(join(dir, "httpd.yaml"), httpd(3));
    const applied = cli(config, "apply", "-f", join(dir, "httpd.yaml"));
    expect(applied.stdout.trim()).toBe("deployment/httpd created");
    const bodies = await answers(3);
    for (const [pod, body] of bodies) expect(body).toBe(pod);
    const ports = new Set(pods().map((p) => `${p.status!.ports[0].hostIp}:${p.status!.ports[0].hostPort}`));
    expect(ports.size).toBe(3);
    expect((await running()).length).toBe(3);
  });

  it("streams a pod's logs through the master", async () => {
    const [pod] = pods();
    const logs = await eventually(() => {
      const r = cli(config, "logs", pod.metadata!.name);
      return r.code === 0 && r.stdout.includes(`started ${pod.metadata!.name}`) && r;
    }, 20_000, "logs");
    expect(logs.stdout).toContain(`started ${pod.metadata!.name}`);
  });

  it("scales to 5 and then to 1, as Docker itself counts", async () => {
    expect(cli(config, "scale", "deployment/httpd", "--replicas", "5").stdout.trim()).toBe("deployment/httpd scaled");
    await answers(5);
    await eventually(async () => (await running()).length === 5, 30_000, "5 containers in Docker");
    expect(cli(config, "scale", "deployment/httpd", "--replicas", "1").code).toBe(0);
    await answers(1);
    await eventually(async () => (await running()).length === 1, 60_000, "1 container in Docker");
    expect(cli(config, "scale", "deployment/httpd", "--replicas", "3").code).toBe(0);
    await answers(3);
  });

  it("replaces a container killed with docker kill", async () => {
    const [victim] = await running();
    await d.getContainer(victim.Id).kill();
    await eventually(async () => {
      const list = await running();
      return list.length === 3 && !list.some((c) => c.Id === victim.Id);
    }, 60_000, "a replacement container");
    await answers(3);
    const restarted = pods().find((p) => p.metadata!.uid === victim.Labels["flotilla.io/pod-uid"]);
    expect(restarted?.status?.containerStatuses[0].restartCount).toBeGreaterThanOrEqual(1);
  });

  it("adopts its containers after the agent is killed and restarted: no duplicates, no restarts", async () => {
    const before = (await running()).map((c) => c.Id).sort();
    const restartsBefore = pods().map((p) => p.status!.containerStatuses[0].restartCount);
    for (const a of AGENTS) await agents.get(a.name)!.kill("SIGKILL");
    // While the agents are down their containers keep serving.
    await answers(3);
    for (const a of AGENTS) agents.set(a.name, await startAgent(a));
    await new Promise((r) => setTimeout(r, 3000));
    const after = (await running()).map((c) => c.Id).sort();
    expect(after).toEqual(before);
    expect(pods().map((p) => p.status!.containerStatuses[0].restartCount)).toEqual(restartsBefore);
    await answers(3);
  });

  it("keeps a pod that fits nowhere Pending, with a reason the user can read", async () => {
    writeFileSync(join(dir, "huge.yaml"), `
apiVersion: flotilla.io/v1
kind: Pod
metadata: { name: huge, labels: { app: huge } }
spec:
  containers:
    - name: c
      image: ${IMAGE}
      command: ["sleep", "3600"]
      resources: { requests: { cpu: "1000", memory: 1Ti } }
`);
    expect(cli(config, "apply", "-f", join(dir, "huge.yaml")).code).toBe(0);
    const described = await eventually(() => {
      const r = cli(config, "describe", "pod", "huge");
      return r.stdout.includes("Insufficient cpu") && r.stdout;
    }, 20_000, "the scheduling reason");
    expect(described).toContain("0/2 nodes are available: 2 Insufficient cpu.");
    expect(pods("app=huge")[0].status?.phase).toBe("Pending");
    expect(cli(config, "get", "pods", "huge").stdout).toMatch(/huge\s+0\/1\s+Pending/);
  });

  it("rejects bad manifests with field-naming errors, and nothing stored changes", async () => {
    const before = cli(config, "get", "deployment", "httpd", "-o", "json").stdout;
    writeFileSync(join(dir, "bad.yaml"), httpd(3).replace("replicas: 3", "replicas: -2").replace("name: httpd", "name: httpd"));
    let r = cli(config, "apply", "-f", join(dir, "bad.yaml"));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("spec.replicas: -2 must be an integer >= 0");
    writeFileSync(join(dir, "typo.yaml"), httpd(3).replace("replicas: 3", "replica: 3"));
    r = cli(config, "apply", "-f", join(dir, "typo.yaml"));
    expect(r.stderr).toContain('spec.replica: unknown field (did you mean "replicas"?)');
    writeFileSync(join(dir, "port.yaml"), httpd(3).replace("containerPort: 8080", "containerPort: 99999"));
    r = cli(config, "apply", "-f", join(dir, "port.yaml"));
    expect(r.stderr).toContain("spec.template.spec.containers[0].ports[0].containerPort: 99999 must be between 1 and 65535");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(cli(config, "get", "deployment", "httpd", "-o", "json").stdout).toBe(before);
  });

  it("keeps pods running while the master is unreachable", async () => {
    const before = (await running()).map((c) => c.Id).sort();
    const endpoints = pods().map((p) => `http://${p.status!.ports[0].hostIp}:${p.status!.ports[0].hostPort}/`);
    await master.kill("SIGKILL");
    // Several heartbeats and watch retries fail meanwhile.
    await new Promise((r) => setTimeout(r, 4000));
    for (const url of endpoints) expect((await fetch(url, { signal: AbortSignal.timeout(2000) })).status).toBe(200);
    expect((await running()).map((c) => c.Id).sort()).toEqual(before);
    for (const a of agents.values()) expect(a.output.join("\n")).toMatch(/heartbeat failed; pods keep running|lost the pod watch/);
  });
});
