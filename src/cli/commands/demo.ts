// `npm start`: a local cluster serving examples/hello.yaml, showing where each replica answers.
import Dockerode from "dockerode";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import type { PodList } from "../../gen/flotilla/v1/pod.js";
import { busyboxAvailable, ensureBusyboxImage } from "../../agent/runtime/index.js";
import { LocalCluster } from "../local-cluster.js";
import { apply } from "./apply.js";

export interface DemoFlags {
  data: string;
  port: string;
  agents: string;
  exit?: boolean;
  driver?: string;
}

const IMAGE = "flotilla/busybox:latest";

function examplePath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "examples", "hello.yaml"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find examples/hello.yaml");
    dir = up;
  }
  return join(dir, "examples", "hello.yaml");
}

/** Docker when a daemon answers and the example's image can be had; the process driver otherwise. */
export async function chooseDriver(say: (s: string) => void): Promise<"docker" | "process"> {
  const docker = new Dockerode();
  try {
    await docker.ping();
  } catch (e) {
    say(`driver: process (no Docker daemon answers: ${(e as Error).message})`);
    return "process";
  }
  try {
    if (!busyboxAvailable() && !(await docker.getImage(IMAGE).inspect().then(() => true, () => false))) {
      say(`driver: process (Docker answers, but ${IMAGE} is absent and /bin/busybox is not here to build it: apt-get install busybox-static)`);
      return "process";
    }
    await ensureBusyboxImage(docker, IMAGE);
  } catch (e) {
    say(`driver: process (could not build ${IMAGE}: ${(e as Error).message})`);
    return "process";
  }
  say(`driver: docker (the daemon answers and ${IMAGE} is ready)`);
  return "docker";
}

export async function runDemo(flags: DemoFlags): Promise<void> {
  const say = (s: string) => process.stdout.write(`${s}\n`);
  const driver = flags.driver === "docker" || flags.driver === "process" ? flags.driver : await chooseDriver(say);
  const cluster = new LocalCluster({ masters: 1, agents: Number(flags.agents), driver, dataDir: flags.data, port: Number(flags.port), keep: false, say });
  const stop = async () => {
    say("stopping the cluster and removing its pods...");
    await cluster.stop();
  };
  try {
    await cluster.start();
    for (const line of await apply(cluster.client!, examplePath(), "default")) say(line);
    await showReplicas(cluster, say);
  } catch (e) {
    await stop();
    throw e;
  }
  say(`\nTry: node dist/src/cli/main.js --config ${cluster.configPath} get pods -o wide`);
  if (flags.exit) return stop();
  say("Press Ctrl-C to stop.");
  await new Promise<void>((resolve) => {
    const onSignal = () => void stop().finally(resolve);
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });
}

async function showReplicas(cluster: LocalCluster, say: (s: string) => void): Promise<void> {
  const deadline = Date.now() + 120_000;
  let pods: PodList["items"] = [];
  while (Date.now() < deadline) {
    pods = (await cluster.client!.call<PodList>((s, md, o, cb) => s.pods.listPods({ namespace: "default", labelSelector: "app=hello", fieldSelector: "" }, md, o, cb))).items;
    const answering = await Promise.all(pods.map((p) => answer(p)));
    if (pods.length === 3 && answering.every(Boolean)) {
      say("\nhello is serving:");
      pods.forEach((p, i) => say(`  ${p.metadata!.name.padEnd(28)} on ${p.spec!.nodeName.padEnd(8)} ${answering[i]}`));
      return;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`hello did not serve within 120 s: ${pods.map((p) => `${p.metadata?.name}=${p.status?.phase}`).join(", ")}`);
}

async function answer(pod: PodList["items"][number]): Promise<string | undefined> {
  const port = pod.status?.ports[0];
  if (pod.status?.phase !== "Running" || !port) return undefined;
  const url = `http://${port.hostIp}:${port.hostPort}/`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return `${url} -> ${(await res.text()).trim()}`;
  } catch {
    return undefined;
  }
}
