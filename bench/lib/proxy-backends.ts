// The proxy bench's backends: three replicas of one service, and the service as the proxies see it.
//
// - process: three plain Node processes running bench/lib/backend-server.ts on addresses of their own in the
//   namespace; the service's backends are those addresses, and nothing is rewritten.
// - docker: three pod containers started through the project's Docker driver (DockerRuntime, as the agent starts
//   them: its labels, init, restart policy), each publishing its container port on the node's address with a host
//   port Docker picks. The service's backends are nodeAddress:hostPort, exactly as Endpoints list them; the proxies
//   get them through preferLocalTargets (src/net/local-backends.ts), as the agent gives them this node's backends:
//   rewritten to each container's own address and port. The image is either the bench's FROM-scratch node image
//   running the same server as the process backend, or busybox httpd as the project's tests run it.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type Dockerode from "dockerode";
import { ensureBusyboxImage } from "../../src/agent/runtime/busybox-image.js";
import { createRuntime, type ContainerSpec, type Runtime, type RuntimeContainer } from "../../src/agent/runtime/index.js";
import { preferLocalTargets, type LocalTarget } from "../../src/net/local-backends.js";
import type { ServiceView } from "../../src/net/types.js";
import { BACKEND_PORT, BACKEND_SERVER_SOURCE } from "./backend-server.js";
import type { NamespaceDocker } from "./netns-docker.js";
import { processesInNetns } from "./netns-docker.js";
import { ensureNodeImage } from "./node-image.js";
import { startIn, stopProc, type Proc } from "./procs.js";
import { deadline, until } from "./timing.js";

export interface Cpu {
  user: number;
  sys: number;
}

export interface Endpoint {
  address: string;
  port: number;
}

export const endpointText = (e: Endpoint) => `${e.address}:${e.port}`;

export interface Replica {
  name: string;
  /** Where the service's Endpoints list it: the node's address and the published port (docker), or its own. */
  published: Endpoint;
  /** Where it listens itself: the container's address and port (docker); the same as `published` (process). */
  own: Endpoint;
  /** Requests served and connections accepted so far; undefined when the server cannot tell (busybox httpd). */
  served(): Promise<{ requests: number; connections: number } | undefined>;
  /** Packets received on the container's interface so far (docker); NaN for a process. */
  packets(): number;
  /** CPU seconds used so far: the process's, or the container's cgroup's (every process in it). */
  cpu(): Cpu;
  /** TCP sockets in TIME_WAIT in its own network namespace (docker); NaN for a process (it shares wrk's). */
  timeWait(): number;
}

export interface Backends {
  kind: "process" | "docker";
  replicas: Replica[];
  /** The service with its backends as Endpoints list them. */
  published: ServiceView;
  /** The service as the proxies get it: `published` with this node's backends rewritten (docker), or the same. */
  local: ServiceView;
  /** Processes that relay published ports (docker-proxy), whose CPU counts as the proxy's. */
  relayPids: number[];
  /** One line for the report's setup. */
  describe: string;
  stop(): Promise<void>;
}

export interface BackendContext {
  netns: string;
  dir: string;
  nodeName: string;
  nodeAddress: string;
  /** The service to fill in (its ports' backends are replaced). */
  service: ServiceView;
  log: (line: string) => void;
}

const CLOCK_TICKS_FALLBACK = 100;

/** User and system CPU seconds of a process (all its threads), from /proc. */
export function cpuSeconds(pid: number | undefined, ticks: number): Cpu {
  if (pid === undefined) return { user: 0, sys: 0 };
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return { user: Number(fields[11]) / ticks, sys: Number(fields[12]) / ticks };
  } catch {
    return { user: NaN, sys: NaN };
  }
}

function withBackends(service: ServiceView, replicas: Replica[], node: string): ServiceView {
  return {
    ...service,
    ports: service.ports.map((p) => ({ ...p, backends: replicas.map((r) => ({ address: r.published.address, port: r.published.port, pod: `${service.namespace}/${r.name}`, node })) })),
  };
}

// ----------------------------------------------------------------------------------------------------- process

/** Server processes, replica i on `addresses[i]`:8080, each started inside the namespace. */
export async function startProcessBackends(c: BackendContext, addresses: string[], clockTicks = CLOCK_TICKS_FALLBACK): Promise<Backends> {
  const program = join(c.dir, "backend-server.mjs");
  writeFileSync(program, BACKEND_SERVER_SOURCE);
  const procs: Proc[] = [];
  const replicas: Replica[] = [];
  try {
    for (const [i, address] of addresses.entries()) {
      const name = `web-${i + 1}`;
      const proc = startIn(c.netns, c.dir, name, process.execPath, [program, String(BACKEND_PORT), name, address, "stdin"]);
      procs.push(proc);
      await proc.nextLine(/^ready\b/, 20_000, `${name} to be ready`);
      const at = { address, port: BACKEND_PORT };
      replicas.push({
        name,
        published: at,
        own: at,
        served: async () => {
          const line = proc.nextLine(/^served \d+ (\d+) (\d+)$/, 5000, `${name}'s request count`);
          proc.child.kill("SIGUSR2");
          const m = await line;
          return { requests: Number(m[1]), connections: Number(m[2]) };
        },
        packets: () => NaN,
        cpu: () => cpuSeconds(proc.pid, clockTicks),
        timeWait: () => NaN,
      });
    }
  } catch (err) {
    for (const p of procs) p.child.kill("SIGKILL");
    throw err;
  }
  const service = withBackends(c.service, replicas, c.nodeName);
  return {
    kind: "process",
    replicas,
    published: service,
    local: service,
    relayPids: [],
    describe: `${replicas.length} replicas, each a node:http process (bench/lib/backend-server.ts) on ${replicas.map((r) => endpointText(r.own)).join(", ")}; the proxies dial those addresses`,
    stop: async () => {
      await Promise.all(procs.map((p) => stopProc(p)));
    },
  };
}

// ------------------------------------------------------------------------------------------------------ docker

export type DockerImageKind = "node" | "busybox";

export interface DockerBackendOptions {
  image: DockerImageKind;
  replicas: number;
  /** Starts this file in its `probe` role inside the namespace: it resolves once every URL has answered 200. */
  probe: (urls: string[]) => Promise<void>;
  clockTicks?: number;
}

/** The replica's container spec, as the agent would make it for pod <namespace>/<name> with one published port. */
function containerSpec(namespace: string, name: string, image: string, kind: DockerImageKind, nodeAddress: string): ContainerSpec {
  const command =
    kind === "node"
      ? { command: [], args: [String(BACKEND_PORT), name] } // the image's entrypoint is node /server.mjs
      : { command: ["sh", "-c", `mkdir -p /www && printf 'hello from %-10s\\n' ${name} > /www/index.html && exec httpd -f -p ${BACKEND_PORT} -h /www`], args: [] };
  return {
    podUid: `bench-${name}`,
    podName: name,
    namespace,
    containerName: "web",
    specHash: "bench",
    attempt: 0,
    image,
    ...command,
    env: {},
    workingDir: "",
    ports: [{ name: "http", containerPort: BACKEND_PORT, hostPort: 0, hostIp: nodeAddress, protocol: "TCP" }],
    imagePullPolicy: "Never",
  };
}

/** The file with a cgroup's CPU time in USER_HZ ticks (v1 cpuacct.stat) or µs (v2 cpu.stat), for a process in it. */
function cgroupCpuFile(pid: number): { file: string; v2: boolean } {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n");
  for (const line of lines) {
    const [, controllers, path] = line.split(":") as [string, string, string];
    if (controllers.split(",").includes("cpuacct")) {
      const file = `/sys/fs/cgroup/${controllers}${path}/cpuacct.stat`;
      if (existsSync(file)) return { file, v2: false };
    }
  }
  const unified = lines.find((l) => l.startsWith("0::"))?.slice(3);
  for (const root of ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) {
    const file = `${root}${unified}/cpu.stat`;
    if (unified !== undefined && existsSync(file)) return { file, v2: true };
  }
  throw new Error(`no CPU accounting file found for the cgroup of pid ${pid}: ${lines.join("; ")}`);
}

function readCgroupCpu(at: { file: string; v2: boolean }, ticks: number): Cpu {
  try {
    const text = readFileSync(at.file, "utf8");
    const field = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1]);
    return at.v2 ? { user: field("user_usec") / 1e6, sys: field("system_usec") / 1e6 } : { user: field("user") / ticks, sys: field("system") / ticks };
  } catch {
    return { user: NaN, sys: NaN };
  }
}

/** Packets received on eth0 in the network namespace of `pid` (the container's). */
function receivedPackets(pid: number): number {
  try {
    const line = readFileSync(`/proc/${pid}/net/dev`, "utf8").split("\n").find((l) => l.trim().startsWith("eth0:"));
    return Number(line?.split(":")[1]?.trim().split(/\s+/)[1]);
  } catch {
    return NaN;
  }
}

/** TCP sockets in TIME_WAIT in the network namespace of `pid` (the container's), from its sockstat. */
function timeWaitSockets(pid: number): number {
  try {
    return Number(/^TCP:.* tw (\d+)/m.exec(readFileSync(`/proc/${pid}/net/sockstat`, "utf8"))?.[1]);
  } catch {
    return NaN;
  }
}

/** TCP sockets in TIME_WAIT in network namespace `netns` (0 when no process of ours is in it). */
export function timeWaitInNetns(netns: string): number {
  const pid = processesInNetns(netns)[0];
  const n = pid === undefined ? 0 : timeWaitSockets(pid);
  return Number.isFinite(n) ? n : 0;
}

/** docker-proxy processes in the namespace (one per published port, started by dockerd). */
function dockerProxyPids(netns: string): number[] {
  return processesInNetns(netns).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "docker-proxy";
    } catch {
      return false;
    }
  });
}

/** The replicas as pod containers through DockerRuntime on the namespace's own dockerd; see the file's header. */
export async function startDockerBackends(c: BackendContext, nsDocker: NamespaceDocker, options: DockerBackendOptions): Promise<Backends> {
  const ticks = options.clockTicks ?? CLOCK_TICKS_FALLBACK;
  const docker: Dockerode = nsDocker.docker;
  const runtime: Runtime = createRuntime("docker", { nodeName: c.nodeName, docker });
  const image =
    options.image === "node"
      ? await deadline("building the node image", 300_000, ensureNodeImage(docker, BACKEND_SERVER_SOURCE))
      : await deadline("importing the busybox image", 120_000, ensureBusyboxImage(docker));
  c.log(`image ${image} ready`);
  const started: RuntimeContainer[] = [];
  for (let i = 0; i < options.replicas; i++) {
    const name = `web-${i + 1}`;
    started.push(await deadline(`starting ${name}`, 60_000, runtime.start(containerSpec(c.service.namespace, name, image, options.image, c.nodeAddress))));
  }
  const replicas: Replica[] = [];
  const targets: LocalTarget[] = [];
  for (const container of started) {
    const info = await docker.getContainer(container.id).inspect();
    // The driver reports the container's address; without it, docker inspect's (the default bridge's).
    const address = container.address ?? info.NetworkSettings.Networks?.bridge?.IPAddress;
    const port = container.ports[0];
    if (!address || !port || !(port.hostPort > 0)) throw new Error(`${container.podName}: no address or published port: ${JSON.stringify({ address, ports: container.ports })}`);
    const pid = info.State.Pid;
    const cgroup = cgroupCpuFile(pid);
    let reports = 0;
    const name = container.podName;
    replicas.push({
      name,
      published: { address: port.hostIp || c.nodeAddress, port: port.hostPort },
      own: { address, port: port.containerPort },
      served:
        options.image === "node"
          ? async () => {
              const n = ++reports;
              await docker.getContainer(container.id).kill({ signal: "SIGUSR2" });
              return until(`${name}'s request count`, 5000, async () => {
                let text = "";
                for await (const chunk of runtime.logs(container.id, { follow: false, tailLines: 10 })) if (chunk.stream === "stdout") text += chunk.data.toString();
                const m = new RegExp(`^served ${n} (\\d+) (\\d+)$`, "m").exec(text);
                return m ? { requests: Number(m[1]), connections: Number(m[2]) } : undefined;
              });
            }
          : async () => undefined,
      packets: () => receivedPackets(pid),
      cpu: () => readCgroupCpu(cgroup, ticks),
      timeWait: () => timeWaitSockets(pid),
    });
    targets.push({ pod: `${c.service.namespace}/${name}`, protocol: "TCP", hostPort: port.hostPort, address, port: port.containerPort });
  }
  await deadline("the replicas to answer", 60_000, options.probe(replicas.flatMap((r) => [r.published, r.own].map((e) => `http://${endpointText(e)}/`))));
  const published = withBackends(c.service, replicas, c.nodeName);
  const local = preferLocalTargets([published], c.nodeName, targets)[0]!;
  const relayPids = dockerProxyPids(c.netns);
  const what = options.image === "node" ? `the bench's FROM-scratch node image ${image} running bench/lib/backend-server.ts` : `${image}, busybox httpd (no keep-alive, a process per connection)`;
  return {
    kind: "docker",
    replicas,
    published,
    local,
    relayPids,
    describe:
      `dockerd ${nsDocker.version} in the namespace (its own data root, removed at the end); ${replicas.length} pod containers started by DockerRuntime (${what}), ` +
      `each publishing ${BACKEND_PORT} on ${c.nodeAddress} with a port Docker picked: Endpoints ${published.ports[0]!.backends.map((b) => `${b.address}:${b.port}`).join(", ")}; ` +
      `the proxies dial (preferLocalTargets) ${local.ports[0]!.backends.map((b) => `${b.address}:${b.port}`).join(", ")}; ${relayPids.length} docker-proxy processes`,
    stop: async () => {
      await Promise.all(started.map((s) => runtime.stop(s.id, 2).then(() => runtime.remove(s.id))));
      await runtime.close();
    },
  };
}
