// Pod start latency with the Docker driver: how long from "create this pod" at the API to the API reporting it
// Running, next to Docker's own create + start of the same container, measured in the same run.
//
//   flotilla:        CreatePod ─► scheduler binds ─► agent's watch ─► docker create/start ─► UpdatePodStatus ─► watch: Running
//   docker-baseline: POST /containers/create ─► POST /containers/{id}/start (returns once the container runs)
//
// Real `flotilla master` and `flotilla agent` processes (the built CLI) on 127.0.0.x; this process is the client.
// One pod at a time, each waited for until Running, so every sample is one pod's latency; the baseline is likewise
// one container at a time, with the driver's own create options (labels aside). The two alternate, iteration by
// iteration, so both see the same machine (which other work may share). Everything created is removed at the end.
//
//   npm run bench:pod-start -- --pods 50          (inside the project's netns: ../shared/ci/in-netns.sh npm run ...)
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync, type WriteStream } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, relative } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { ClientReadableStream } from "@grpc/grpc-js";
import Dockerode from "dockerode";
import { ensureBusyboxImage } from "../src/agent/runtime/busybox-image.js";
import { createOptions } from "../src/agent/runtime/docker.js";
import { MANAGED_LABEL, NODE_LABEL, type ContainerSpec } from "../src/agent/runtime/runtime.js";
import { ApiClient, describeError } from "../src/api/client.js";
import type { CreateTokenResponse } from "../src/gen/flotilla/v1/cluster.js";
import type { NodeList } from "../src/gen/flotilla/v1/node.js";
import { Pod, type PodEvent, type PodList } from "../src/gen/flotilla/v1/pod.js";

const IMAGE = "flotilla/busybox:latest";
const COMMAND = ["sleep", "3600"];
const NAMESPACE = "default";
const CONTAINER = "main";
const AGENT_ADDRESS = "127.0.0.21";
/** Any single pod (or baseline container) slower than this aborts the run. */
const STEP_TIMEOUT_MS = 60_000;
/** Flotilla's aim: at most this much on top of Docker's own start, at p99. */
const AIM_P99_MS = 300;
/** Labels the baseline's containers (not MANAGED_LABEL: the agent must not see them). */
const BENCH_LABEL = "flotilla.io/bench";
/** Pods deleted (and baseline containers removed) at a time when cleaning up. */
const TEARDOWN_BATCH = 10;
/** Seconds of quiet after the last pod, over which the daemons' idle CPU use is sampled. */
const IDLE_SAMPLE_S = 5;
const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;
const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

const USAGE = `usage: node dist/bench/pod-start.js [--pods N] [--warmup K] [--pause-ms MS] [--json FILE] [--keep-logs]
  --pods N       pods measured (and as many baseline containers), default 50
  --warmup K     iterations run first and not counted, default 3
  --pause-ms MS  pause between iterations, default 200
  --json FILE    also write every sample and the stage timestamps as JSON
  --keep-logs    keep the master's and agent's logs (they are kept anyway when the run fails)
Needs dockerd (DOCKER_HOST) and a build (npm run build). Here: ../shared/ci/in-netns.sh node dist/bench/pod-start.js`;

interface Options {
  pods: number;
  warmup: number;
  pauseMs: number;
  json?: string;
  keepLogs: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      pods: { type: "string", default: "50" },
      warmup: { type: "string", default: "3" },
      "pause-ms": { type: "string", default: "200" },
      json: { type: "string" },
      "keep-logs": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (flag: string, text: string, min: number) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${flag}: "${text}" must be an integer >= ${min}`);
    return n;
  };
  return {
    pods: int("pods", values.pods, 1),
    warmup: int("warmup", values.warmup, 0),
    pauseMs: int("pause-ms", values["pause-ms"], 0),
    json: values.json,
    keepLogs: values["keep-logs"],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Time and statistics

/** Wall-clock milliseconds with sub-millisecond resolution, comparable with the daemons' and dockerd's timestamps. */
const nowMs = () => performance.timeOrigin + performance.now();

/** RFC 3339 with any number of fractional digits (docker gives nanoseconds) to epoch milliseconds. */
function parseTime(text: string | undefined): number {
  if (!text || text.startsWith("0001-")) return NaN;
  const match = /^(.*?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!match) return Date.parse(text);
  const whole = Date.parse(`${match[1]}${match[3]}`);
  return whole + (match[2] ? Number(`0.${match[2]}`) * 1000 : 0);
}

/** Nearest-rank percentile: the smallest sample with at least p% of the samples at or below it. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

function summarize(samples: number[]): Summary {
  const sorted = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? NaN };
}

const fmt = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(1) : "-");
const signed = (ms: number) => (Number.isFinite(ms) ? `${ms >= 0 ? "+" : ""}${ms.toFixed(1)}` : "-");

/** A markdown table whose columns line up in a terminal too. `right` marks right-aligned columns. */
function table(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (right[i] ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: () => string | Promise<string>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void Promise.resolve(what()).then(
        (message) => reject(new Error(message)),
        (e: unknown) => reject(new Error(`timed out after ${ms} ms (${describeError(e)})`)),
      );
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------------
// The flotilla processes

interface LogLine {
  at: number;
  text: string;
}

class Daemon {
  readonly lines: LogLine[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private readonly log: WriteStream;

  constructor(
    readonly name: string,
    args: string[],
    logFile: string,
  ) {
    this.log = createWriteStream(logFile);
    this.child = spawn(process.execPath, [CLI, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      // info is the level a user runs with; the agent's "container started" lines time one stage of the start.
      env: { ...process.env, FLOTILLA_LOG_LEVEL: process.env.FLOTILLA_LOG_LEVEL ?? "info" },
    });
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream }).on("line", (text) => {
        this.lines.push({ at: nowMs(), text });
        this.log.write(`${text}\n`);
      });
    }
  }

  /** User + system CPU seconds the process has used so far (Linux /proc); NaN where unknown. */
  cpuSeconds(): number {
    try {
      const stat = readFileSync(`/proc/${this.child.pid}/stat`, "utf8");
      // Fields after the command (which may hold spaces) start at field 3; utime and stime are fields 14 and 15.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    } catch {
      return NaN;
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first match of `ready` in the output; rejects if the process exits first or is slow. */
  async waitFor(ready: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const line of this.lines) {
        const m = ready.exec(line.text);
        if (m) return m;
      }
      if (!this.running) throw new Error(`${this.name} exited before printing ${ready}: ${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not print ${ready} within ${timeoutMs} ms: ${this.tail()}`);
      await sleep(20);
    }
  }

  tail(n = 5): string {
    return this.lines.slice(-n).map((l) => l.text).join(" | ");
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.running) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.log.end(resolve));
  }
}

/** pino's JSON lines: epoch-ms `time`, `msg`, and the call's own fields. */
function jsonLogs(lines: LogLine[]): { time: number; msg: string; [key: string]: unknown }[] {
  const out: { time: number; msg: string; [key: string]: unknown }[] = [];
  for (const { text } of lines) {
    if (!text.startsWith("{")) continue;
    try {
      const parsed = JSON.parse(text) as { time?: unknown; msg?: unknown };
      if (typeof parsed.time === "number" && typeof parsed.msg === "string") out.push(parsed as { time: number; msg: string });
    } catch {
      // not a log line
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Samples

interface DockerSample {
  iteration: number;
  name: string;
  t0: number;
  /** createContainer returned. */
  createdReturned: number;
  /** start returned: the container runs. */
  end: number;
  /** dockerd's Created and State.StartedAt. */
  dockerCreated: number;
  dockerStarted: number;
}

interface FlotillaSample {
  iteration: number;
  name: string;
  t0: number;
  /** CreatePod returned. */
  createReturned: number;
  /** The watch delivered the pod with spec.nodeName set (the bind), as this client saw it. */
  bindSeen: number;
  /** The watch delivered the pod with phase Running. */
  end: number;
  /** metadata.creationTimestamp (master clock, ms precision). */
  created: number;
  /** PodScheduled condition's lastTransitionTime (the scheduler's bind). */
  scheduled: number;
  /** dockerd's Created and State.StartedAt of the pod's container. */
  dockerCreated: number;
  dockerStarted: number;
  /** The agent's "container started" log line (start returned, container inspected). */
  agentStarted: number;
  /** Ready condition's lastTransitionTime, stamped by the agent as it builds the status it reports. */
  reported: number;
}

// ---------------------------------------------------------------------------------------------------------------
// The benchmark

interface Waiter {
  bindSeen: number;
  resolve(value: { at: number; pod: Pod }): void;
  reject(error: Error): void;
}

class Bench {
  readonly runId = `ps${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
  readonly nodeName = `bench-${this.runId}`;
  readonly dir = mkdtempSync(join(tmpdir(), "flotilla-bench-pod-start-"));
  readonly docker = new Dockerode();
  master?: Daemon;
  agent?: Daemon;
  client?: ApiClient;
  private watch?: ClientReadableStream<PodEvent>;
  private watchClosing = false;
  private readonly waiters = new Map<string, Waiter>();
  readonly pods: string[] = [];
  readonly dockerSamples: DockerSample[] = [];
  readonly flotillaSamples: FlotillaSample[] = [];
  private readonly podSelector = `bench=${this.runId}`;
  /** CPU seconds of the daemons over the measured iterations, and over a quiet spell after them. */
  readonly cpu = { wallS: NaN, agentS: NaN, masterS: NaN, idleAgentS: NaN, idleMasterS: NaN };
  /** Load average when the last iteration ended (before the clean-up's own load). */
  loadAtEnd: number[] = [];
  private aborted?: Error;
  private stopping = false;

  constructor(private readonly o: Options) {}

  /** Fails the step under way and stops the run before the next one. */
  abort(error: Error): void {
    this.aborted ??= error;
    for (const w of this.waiters.values()) w.reject(error);
  }

  /** A daemon that dies mid-run fails the run at once, rather than after the step timeout. */
  private watchExit(daemon: Daemon): void {
    void daemon.exited.then((code) => {
      if (!this.stopping) this.abort(new Error(`${daemon.name} exited (code ${code}) during the run: ${daemon.tail()}`));
    });
  }

  async checkDocker(): Promise<void> {
    await withTimeout(this.docker.ping(), 5000, () => `dockerd does not answer (DOCKER_HOST=${process.env.DOCKER_HOST ?? "unset"}); run inside ../shared/ci/in-netns.sh`);
  }

  async setUp(): Promise<void> {
    await ensureBusyboxImage(this.docker, IMAGE);

    this.master = new Daemon("master", ["master", "--listen", "127.0.0.1:0", "--data", join(this.dir, "master")], join(this.dir, "master.log"));
    this.watchExit(this.master);
    const [, address] = await this.master.waitFor(/master listening on (\S+)/);
    const token = readFileSync(join(this.dir, "master", "admin.token"), "utf8").trim();
    this.client = new ApiClient({ servers: [address], token, timeoutMs: 30_000 });
    const join_ = await this.client.call<CreateTokenResponse>((s, md, o, cb) =>
      s.cluster.createToken({ ttlSeconds: 3600n, description: "bench pod-start" }, md, o, cb),
    );
    this.agent = new Daemon(
      "agent",
      ["agent", "--server", address, "--token", join_.token, "--driver", "docker", "--address", AGENT_ADDRESS, "--name", this.nodeName, "--data", join(this.dir, "agent")],
      join(this.dir, "agent.log"),
    );
    this.watchExit(this.agent);
    await this.agent.waitFor(/joined/);
    await this.waitForReadyNode();
    await this.startWatch();
  }

  private async waitForReadyNode(): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const nodes = await this.client!.call<NodeList>((s, md, o, cb) => s.nodes.listNodes({ namespace: "", labelSelector: "", fieldSelector: "" }, md, o, cb));
      const node = nodes.items.find((n) => n.metadata?.name === this.nodeName);
      if (node?.status?.conditions.some((c) => c.type === "Ready" && c.status === "True")) return;
      await sleep(100);
    }
    throw new Error(`node ${this.nodeName} did not become Ready within 30 s: ${this.agent!.tail()}`);
  }

  /** One watch for the whole run, from a list's revision, so no event of a pod created afterwards is missed. */
  private async startWatch(): Promise<void> {
    const list = await this.client!.call<PodList>((s, md, o, cb) =>
      s.pods.listPods({ namespace: NAMESPACE, labelSelector: this.podSelector, fieldSelector: "" }, md, o, cb),
    );
    const stream = this.client!.stream((s, md) =>
      s.pods.watchPods({ namespace: NAMESPACE, labelSelector: this.podSelector, fieldSelector: "", resourceVersion: list.resourceVersion }, md),
    );
    this.watch = stream;
    stream.on("data", (event: PodEvent) => {
      const at = nowMs();
      const pod = event.object;
      const waiter = pod?.metadata && this.waiters.get(pod.metadata.name);
      if (!pod || !waiter) return;
      if (pod.spec?.nodeName && !waiter.bindSeen) waiter.bindSeen = at;
      const phase = pod.status?.phase;
      if (phase === "Running") waiter.resolve({ at, pod });
      else if (phase === "Failed" || phase === "Succeeded" || event.type === "DELETED") {
        waiter.reject(new Error(`pod ${pod.metadata!.name} went ${event.type === "DELETED" ? "away" : phase} instead of Running: ${podState(pod)}`));
      }
    });
    stream.on("error", (e: Error) => {
      if (!this.watchClosing) this.abort(new Error(`the pod watch failed: ${describeError(e)}`));
    });
    stream.on("end", () => {
      if (!this.watchClosing) this.abort(new Error("the pod watch ended"));
    });
  }

  async run(): Promise<void> {
    const total = this.o.warmup + this.o.pods;
    const cpuNow = () => ({ at: nowMs(), agent: this.agent!.cpuSeconds(), master: this.master!.cpuSeconds() });
    let measuredFrom = cpuNow();
    for (let i = 0; i < total; i++) {
      if (this.aborted) throw this.aborted;
      const counted = i >= this.o.warmup;
      if (i === this.o.warmup) measuredFrom = cpuNow();
      // Alternate the order, so neither side always runs right after the other's work.
      const steps = i % 2 === 0 ? [() => this.dockerOnce(i), () => this.flotillaOnce(i)] : [() => this.flotillaOnce(i), () => this.dockerOnce(i)];
      for (const step of steps) {
        const sample = await step();
        if (!counted) continue;
        if ("scheduled" in sample) this.flotillaSamples.push(sample);
        else this.dockerSamples.push(sample);
      }
      if ((i + 1) % 10 === 0 || i + 1 === total) {
        const last = this.flotillaSamples.at(-1);
        const lastDocker = this.dockerSamples.at(-1);
        process.stderr.write(
          `  ${i + 1}/${total} iterations${counted ? "" : " (warm-up)"}` +
            (last && lastDocker ? `; last: flotilla ${fmt(last.end - last.t0)} ms, docker ${fmt(lastDocker.end - lastDocker.t0)} ms` : "") +
            "\n",
        );
      }
      if (this.o.pauseMs > 0) await sleep(this.o.pauseMs);
    }
    const measuredTo = cpuNow();
    this.loadAtEnd = loadavg();
    await sleep(IDLE_SAMPLE_S * 1000);
    const idleTo = cpuNow();
    Object.assign(this.cpu, {
      wallS: (measuredTo.at - measuredFrom.at) / 1000,
      agentS: measuredTo.agent - measuredFrom.agent,
      masterS: measuredTo.master - measuredFrom.master,
      idleAgentS: idleTo.agent - measuredTo.agent,
      idleMasterS: idleTo.master - measuredTo.master,
    });
  }

  /** Docker's own create + start of the container the driver would create for pod `i`, as the driver asks for it. */
  private async dockerOnce(i: number): Promise<DockerSample> {
    const name = `${this.runId}-docker-${i}`;
    const options = createOptions(containerSpec(`pod-${i}`, this.nodeName), this.nodeName);
    options.name = name;
    options.Labels = { [BENCH_LABEL]: this.runId };
    const t0 = nowMs();
    const { container, createdReturned } = await withTimeout(
      this.docker.createContainer(options).then((container) => ({ container, createdReturned: nowMs() })),
      STEP_TIMEOUT_MS,
      () => `docker create of ${name} took more than ${STEP_TIMEOUT_MS / 1000} s`,
    );
    await withTimeout(container.start(), STEP_TIMEOUT_MS, () => `docker start of ${name} took more than ${STEP_TIMEOUT_MS / 1000} s`);
    const end = nowMs();
    const info = await container.inspect();
    if (!info.State.Running) throw new Error(`baseline container ${name} is not running after start: ${info.State.Status}`);
    return { iteration: i, name, t0, createdReturned, end, dockerCreated: parseTime(info.Created), dockerStarted: parseTime(info.State.StartedAt) };
  }

  /** CreatePod, then wait for the watch to show it Running. */
  private async flotillaOnce(i: number): Promise<FlotillaSample> {
    const name = `${this.runId}-pod-${i}`;
    const pod = Pod.fromPartial({
      metadata: { name, namespace: NAMESPACE, labels: { bench: this.runId } },
      spec: { restartPolicy: "Always", containers: [{ name: CONTAINER, image: IMAGE, command: COMMAND }] },
    });
    let waiter!: Waiter;
    const running = new Promise<{ at: number; pod: Pod }>((resolve, reject) => {
      waiter = { bindSeen: 0, resolve, reject };
    });
    // Handled below, or abandoned when CreatePod fails; either way never an unhandled rejection.
    running.catch(() => undefined);
    this.waiters.set(name, waiter);
    if (this.aborted) waiter.reject(this.aborted);
    try {
      const t0 = nowMs();
      await this.client!.call<Pod>((s, md, o, cb) => s.pods.createPod(pod, md, o, cb));
      this.pods.push(name);
      const createReturned = nowMs();
      const { at: end, pod: seen } = await withTimeout(running, STEP_TIMEOUT_MS, () => this.describeSlowPod(name));
      const containerId = seen.status?.containerStatuses[0]?.containerId ?? "";
      const info = await this.docker.getContainer(containerId).inspect();
      const agentLine = jsonLogs(this.agent!.lines).find((l) => l.msg === "container started" && l.pod === name);
      return {
        iteration: i,
        name,
        t0,
        createReturned,
        bindSeen: waiter.bindSeen,
        end,
        created: parseTime(seen.metadata?.creationTimestamp),
        scheduled: parseTime(seen.status?.conditions.find((c) => c.type === "PodScheduled")?.lastTransitionTime),
        dockerCreated: parseTime(info.Created),
        dockerStarted: parseTime(info.State.StartedAt),
        agentStarted: agentLine?.time ?? NaN,
        reported: parseTime(seen.status?.conditions.find((c) => c.type === "Ready")?.lastTransitionTime),
      };
    } finally {
      this.waiters.delete(name);
    }
  }

  private async describeSlowPod(name: string): Promise<string> {
    const prefix = `pod ${name} was not Running within ${STEP_TIMEOUT_MS / 1000} s`;
    const pod = await this.client!.call<Pod>((s, md, o, cb) => s.pods.getPod({ namespace: NAMESPACE, name }, md, o, cb));
    return `${prefix}: ${podState(pod)}; agent: ${this.agent!.tail(3)}`;
  }

  /** Deletes the pods, stops the processes, and removes every container this run created (and only those). */
  async tearDown(): Promise<string[]> {
    const problems: string[] = [];
    const attempt = async (what: string, work: () => Promise<unknown>) => {
      try {
        await work();
      } catch (e) {
        problems.push(`${what}: ${describeError(e)}`);
      }
    };
    this.stopping = true;
    this.watchClosing = true;
    this.watch?.cancel();
    const client = this.client;
    const agentUp = this.agent?.running ?? false;
    if (client && this.master?.running) {
      // In batches, each waited for, so that tearing down hundreds of containers at once does not swamp a small
      // shared machine. The agent stops and removes its containers itself, as in use; what it leaves goes below.
      const podLabels = [`${MANAGED_LABEL}=true`, `${NODE_LABEL}=${this.nodeName}`];
      await attempt("deleting the pods", async () => {
        for (let start = 0; start < this.pods.length; start += TEARDOWN_BATCH) {
          const batch = this.pods.slice(start, start + TEARDOWN_BATCH);
          await Promise.all(batch.map((name) => client.call((s, md, o, cb) => s.pods.deletePod({ namespace: NAMESPACE, name, resourceVersion: "" }, md, o, cb))));
          if (!agentUp) continue;
          const left = this.pods.length - start - batch.length;
          const deadline = Date.now() + 30_000;
          while (Date.now() < deadline && (await this.listOwn(podLabels)).length > left) await sleep(200);
        }
      });
    }
    client?.close();
    await attempt("stopping the agent", async () => this.agent?.stop());
    await attempt("stopping the master", async () => this.master?.stop());
    await attempt("removing the pods' containers", () => this.removeContainers([`${MANAGED_LABEL}=true`, `${NODE_LABEL}=${this.nodeName}`]));
    await attempt("removing the baseline's containers", () => this.removeContainers([`${BENCH_LABEL}=${this.runId}`]));
    return problems;
  }

  private listOwn(labels: string[]): Promise<Dockerode.ContainerInfo[]> {
    return this.docker.listContainers({ all: true, filters: { label: labels } });
  }

  private async removeContainers(labels: string[]): Promise<void> {
    const list = await this.listOwn(labels);
    for (let start = 0; start < list.length; start += TEARDOWN_BATCH) {
      await Promise.all(
        list.slice(start, start + TEARDOWN_BATCH).map((c) =>
          this.docker.getContainer(c.Id).remove({ force: true, v: true }).catch((e: unknown) => {
            if ((e as { statusCode?: number }).statusCode !== 404) throw e;
          }),
        ),
      );
    }
  }

  removeDir(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The ContainerSpec the agent's pod worker builds for a pod of this benchmark (see src/agent/pod-worker.ts). */
function containerSpec(podName: string, nodeName: string): ContainerSpec {
  return {
    podUid: "",
    podName,
    namespace: NAMESPACE,
    containerName: CONTAINER,
    specHash: "",
    attempt: 0,
    image: IMAGE,
    command: COMMAND,
    args: [],
    env: { FLOTILLA_POD_NAME: podName, FLOTILLA_POD_NAMESPACE: NAMESPACE, FLOTILLA_NODE_NAME: nodeName },
    workingDir: "",
    ports: [],
    imagePullPolicy: "IfNotPresent",
  };
}

function podState(pod: Pod): string {
  const st = pod.status;
  const c = st?.containerStatuses[0];
  const scheduled = st?.conditions.find((x) => x.type === "PodScheduled");
  const container = c?.state?.waiting
    ? `waiting (${c.state.waiting.reason}${c.state.waiting.message ? `: ${c.state.waiting.message}` : ""})`
    : c?.state?.terminated
      ? `terminated (${c.state.terminated.reason}, exit ${c.state.terminated.exitCode})`
      : c?.state?.running
        ? "running"
        : "no status";
  return `phase ${st?.phase || "(none)"}, node ${pod.spec?.nodeName || "(unbound)"}, ` +
    `${scheduled ? `PodScheduled=${scheduled.status}${scheduled.message ? ` (${scheduled.message})` : ""}, ` : ""}container ${container}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Report

interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: string;
  kernel: string;
  node: string;
  docker: string;
  dockerDetails: string;
  containersAtStart: number;
}

async function describeMachine(docker: Dockerode): Promise<Machine> {
  const [version, info] = await Promise.all([docker.version(), docker.info() as Promise<Record<string, unknown>>]);
  const component = (name: string) => version.Components?.find((c) => c.Name.toLowerCase() === name)?.Version;
  const parts = [
    `API ${version.ApiVersion}`,
    component("containerd") && `containerd ${component("containerd")}`,
    component("runc") && `runc ${component("runc")}`,
    `storage ${String(info.Driver)}`,
    `cgroup ${String(info.CgroupDriver)}/v${String(info.CgroupVersion)}`,
  ].filter(Boolean);
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    memoryGiB: (totalmem() / 2 ** 30).toFixed(1),
    kernel: release(),
    node: process.version,
    docker: version.Version,
    dockerDetails: parts.join(", "),
    containersAtStart: Number(info.ContainersRunning ?? 0),
  };
}

function commandLine(): string {
  const script = relative(process.cwd(), process.argv[1] ?? "") || process.argv[1];
  const args = process.argv.slice(2).join(" ");
  const direct = `node ${script}${args ? ` ${args}` : ""}`;
  const wrapped = process.env.FLOTILLA_NETNS ? ` (inside ../shared/ci/in-netns.sh, DOCKER_HOST=${process.env.DOCKER_HOST ?? ""})` : "";
  const npm = process.env.npm_lifecycle_event === "bench:pod-start" ? `npm run bench:pod-start${args ? ` -- ${args}` : ""}  =  ` : "";
  return `${npm}${direct}${wrapped}`;
}

interface Stage {
  name: string;
  what: string;
  samples: number[];
}

function stagesOf(flotilla: FlotillaSample[], docker: DockerSample[]): { flotilla: Stage[]; docker: Stage[] } {
  const f = (pick: (s: FlotillaSample) => number) => flotilla.map(pick);
  const d = (pick: (s: DockerSample) => number) => docker.map(pick);
  return {
    flotilla: [
      { name: "API create", what: "client: CreatePod sent -> creationTimestamp", samples: f((s) => s.created - s.t0) },
      { name: "schedule + bind", what: "creationTimestamp -> PodScheduled", samples: f((s) => s.scheduled - s.created) },
      { name: "to agent, agent sync", what: "PodScheduled -> dockerd Created (watch to agent, list+inspect, image check)", samples: f((s) => s.dockerCreated - s.scheduled) },
      { name: "docker create+start", what: "dockerd Created -> State.StartedAt", samples: f((s) => s.dockerStarted - s.dockerCreated) },
      { name: "start returns, inspect", what: "StartedAt -> agent logs 'container started'", samples: f((s) => s.agentStarted - s.dockerStarted) },
      { name: "agent builds status", what: "'container started' -> Ready condition stamped", samples: f((s) => s.reported - s.agentStarted) },
      { name: "status to client", what: "Ready stamped -> client's watch shows Running", samples: f((s) => s.end - s.reported) },
      { name: "total", what: "client: CreatePod sent -> watch shows Running", samples: f((s) => s.end - s.t0) },
    ],
    docker: [
      { name: "request -> Created", what: "client: create sent -> dockerd Created", samples: d((s) => s.dockerCreated - s.t0) },
      { name: "docker create+start", what: "dockerd Created -> State.StartedAt", samples: d((s) => s.dockerStarted - s.dockerCreated) },
      { name: "start returns", what: "StartedAt -> client: start returned", samples: d((s) => s.end - s.dockerStarted) },
      { name: "total", what: "client: create sent -> start returned", samples: d((s) => s.end - s.t0) },
    ],
  };
}

function stageTable(stages: Stage[]): string {
  return table(
    ["stage", "p50", "p90", "p99", "max", "measured as"],
    stages.map((st) => {
      const s = summarize(st.samples);
      return [st.name, fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.max), st.what];
    }),
    [false, true, true, true, true, false],
  );
}

/** p50 per block of consecutive pods, to show whether the start slows as pods accumulate on the node. */
function trend(samples: number[], blocks: number): string {
  const size = Math.ceil(samples.length / blocks);
  const parts: string[] = [];
  for (let start = 0; start < samples.length; start += size) {
    const block = samples.slice(start, start + size);
    parts.push(`${start + 1}-${start + block.length}: ${fmt(summarize(block).p50)}`);
  }
  return parts.join(", ");
}

function report(o: Options, machine: Machine, date: Date, loads: { start: number[]; end: number[] }, bench: Bench): string {
  const docker = summarize(bench.dockerSamples.map((s) => s.end - s.t0));
  const flotilla = summarize(bench.flotillaSamples.map((s) => s.end - s.t0));
  const paired = summarize(
    bench.flotillaSamples.map((f) => {
      const d = bench.dockerSamples.find((x) => x.iteration === f.iteration);
      return d ? f.end - f.t0 - (d.end - d.t0) : NaN;
    }),
  );
  // The same, less dockerd's own Created -> StartedAt: what each side spends around Docker's start, which Docker's
  // jitter (large on a shared machine) does not drown.
  const dockerOutside = summarize(bench.dockerSamples.map((s) => s.end - s.t0 - (s.dockerStarted - s.dockerCreated)));
  const flotillaOutside = summarize(bench.flotillaSamples.map((s) => s.end - s.t0 - (s.dockerStarted - s.dockerCreated)));
  const row = (name: string, s: Summary) => [name, String(s.n), fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.max)];
  const diffRow = (a: Summary, b: Summary) => ["difference", "", signed(a.p50 - b.p50), signed(a.p90 - b.p90), signed(a.p99 - b.p99), signed(a.max - b.max)];
  const diff = diffRow(flotilla, docker);
  const overheadP99 = flotilla.p99 - docker.p99;
  const stages = stagesOf(bench.flotillaSamples, bench.dockerSamples);
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
  const cpu = bench.cpu;
  const pctOfCore = (seconds: number) => `${((100 * seconds) / IDLE_SAMPLE_S).toFixed(0)}%`;
  return [
    "## Pod start: apply to Running",
    "",
    `command:  ${commandLine()}`,
    `date:     ${date.toISOString()}`,
    `machine:  ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}`,
    `docker:   ${machine.docker} (${machine.dockerDetails}); ${machine.containersAtStart} other containers running at start`,
    `load avg: ${la(loads.start)} at start, ${la(loads.end)} after the last pod (1/5/15 min)`,
    `run:      ${o.pods} pods + ${o.pods} docker containers, one at a time, alternating; ${o.warmup} warm-up iterations not counted; ` +
      `${o.pauseMs} ms pause between iterations; image ${IMAGE}, command ${JSON.stringify(COMMAND)}, no ports`,
    "",
    "Latency, ms (nearest-rank percentiles):",
    "",
    table(["", "n", "p50", "p90", "p99", "max"], [row("docker-baseline", docker), row("flotilla", flotilla), diff], [false, true, true, true, true, true]),
    "",
    `Flotilla adds ${signed(flotilla.p50 - docker.p50)} ms at p50 and ${signed(overheadP99)} ms at p99 ` +
      `(aim: under ${AIM_P99_MS} ms at p99: ${overheadP99 < AIM_P99_MS ? "met" : "NOT met"}).`,
    `Paired by iteration (flotilla - docker of the same iteration): p50 ${signed(paired.p50)}, p90 ${signed(paired.p90)}, p99 ${signed(paired.p99)} ms.`,
    "",
    "Time outside dockerd's create->start (total less dockerd's Created -> State.StartedAt), ms:",
    "",
    table(["", "n", "p50", "p90", "p99", "max"], [row("docker-baseline", dockerOutside), row("flotilla", flotillaOutside), diffRow(flotillaOutside, dockerOutside)], [false, true, true, true, true, true]),
    "",
    `CPU:      agent ${cpu.agentS.toFixed(1)} s, master ${cpu.masterS.toFixed(1)} s over the ${cpu.wallS.toFixed(0)} s of measured iterations; ` +
      `idle afterwards with ${bench.pods.length} pods on the node: agent ${pctOfCore(cpu.idleAgentS)}, master ${pctOfCore(cpu.idleMasterS)} of one core`,
    `p50 by pods on the node: flotilla ${trend(bench.flotillaSamples.map((s) => s.end - s.t0), 5)}; ` +
      `docker ${trend(bench.dockerSamples.map((s) => s.end - s.t0), 5)}`,
    "",
    "Where a flotilla pod's time goes, ms (each stage's own percentiles; they do not add up to the total's):",
    "",
    stageTable(stages.flotilla),
    "",
    "Where a baseline container's time goes, ms:",
    "",
    stageTable(stages.docker),
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const date = new Date();
  const loadStart = loadavg();
  const bench = new Bench(options);
  let failed = false;
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write("interrupted: cleaning up (Ctrl-C again to leave things behind)\n");
    // Fail the pod being waited for; main's finally cleans up.
    bench.abort(new Error("interrupted"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let machine: Machine | undefined;
  try {
    await bench.checkDocker();
    machine = await describeMachine(bench.docker);
    process.stderr.write(`pod-start: ${options.pods} pods (+${options.warmup} warm-up) on node ${bench.nodeName}; logs in ${bench.dir}\n`);
    await bench.setUp();
    await bench.run();
  } catch (e) {
    failed = true;
    process.stderr.write(`pod-start failed: ${describeError(e)}\n`);
  } finally {
    const problems = await bench.tearDown();
    for (const p of problems) process.stderr.write(`cleanup: ${p}\n`);
    if (failed || problems.length > 0 || options.keepLogs) process.stderr.write(`logs kept in ${bench.dir}\n`);
    else bench.removeDir();
  }
  if (failed || !machine) return 1;
  const text = report(options, machine, date, { start: loadStart, end: bench.loadAtEnd }, bench);
  process.stdout.write(`${text}\n`);
  if (options.json) {
    writeFileSync(
      options.json,
      `${JSON.stringify({ date: date.toISOString(), command: commandLine(), machine, options, load: { start: loadStart, end: bench.loadAtEnd }, cpu: bench.cpu, docker: bench.dockerSamples, flotilla: bench.flotillaSamples }, null, 2)}\n`,
    );
  }
  return 0;
}

process.exitCode = await main();
