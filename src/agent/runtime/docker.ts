// The Docker driver: one container per ContainerSpec, found again after an agent restart through its labels.
// Several agents may share one daemon, so every query filters on MANAGED_LABEL and this node's NODE_LABEL.
//
//   start: ensure image -> create (labels, ports, limits, init) -> start -> inspect (actual host ports)
//   list:  list by label -> inspect only what changed (an inspect is cached while the container's state, as the
//          cheap list call reports it, stays the same: a running container's ports and start time do not change)
//   exec:  exec create -> start attached (hijack) -> drain until the output ends -> exec inspect for the exit code
import { Writable } from "node:stream";
import Dockerode from "dockerode";
import { ChunkQueue } from "./chunk-queue.js";
import {
  demuxLogBuffer,
  destroyStream,
  dockerMessage,
  followJsonStream,
  statusCodeOf,
} from "./docker-util.js";
import { containerEnv, envList } from "./port-env.js";
import {
  ATTEMPT_LABEL,
  CONTAINER_LABEL,
  MANAGED_LABEL,
  NAMESPACE_LABEL,
  NODE_LABEL,
  POD_NAME_LABEL,
  POD_UID_LABEL,
  RuntimeError,
  SPEC_HASH_LABEL,
  type ContainerSpec,
  type LogChunk,
  type LogOptions,
  type PortRequest,
  type PublishedPort,
  type Runtime,
  type RuntimeContainer,
} from "./runtime.js";

/** The requested ports as JSON, so that port names survive an agent restart (docker itself keeps no names). */
export const PORTS_LABEL = "flotilla.io/ports";

export interface DockerRuntimeOptions {
  nodeName: string;
  /** Defaults to `new Dockerode()`, which honours DOCKER_HOST. */
  docker?: Dockerode;
}

const WATCHED_EVENTS = ["start", "die", "destroy", "oom"];
const WATCH_RECONNECT_MS = 1000;
/** Log chunks buffered for a slow reader before the daemon's stream is paused. */
const LOG_HIGH_WATER = 256;
/** How often an exec that has closed its output is asked for its exit code. */
const EXEC_POLL_MS = 20;

export class DockerRuntime implements Runtime {
  readonly name = "docker";
  private readonly docker: Dockerode;
  private readonly nodeName: string;
  private readonly inspected = new Map<string, RuntimeContainer>();
  private readonly listeners = new Set<() => void>();
  private events: { close(): void } | undefined;
  /** Log streams still open, ended by close(). */
  private readonly logClosers = new Set<() => void>();

  constructor(options: DockerRuntimeOptions) {
    this.nodeName = options.nodeName;
    this.docker = options.docker ?? new Dockerode();
  }

  async version(): Promise<string> {
    // The version endpoint's Version is the same string as info's ServerVersion, and much cheaper to get.
    const { Version } = await this.docker.version();
    return `docker://${Version}`;
  }

  async list(): Promise<RuntimeContainer[]> {
    const summaries = await this.docker.listContainers({ all: true, filters: { label: this.labelSelector() } });
    const present = new Set(summaries.map((summary) => summary.Id));
    for (const id of this.inspected.keys()) if (!present.has(id)) this.inspected.delete(id);
    const containers = await Promise.all(
      summaries.map((summary) => {
        const cached = this.inspected.get(summary.Id);
        return cached && cached.state === summaryState(summary.State) ? cached : this.maybeInspect(summary.Id);
      }),
    );
    return containers.filter((container) => container !== undefined);
  }

  async start(spec: ContainerSpec): Promise<RuntimeContainer> {
    await this.ensureImage(spec.image, spec.imagePullPolicy);
    const name = containerName(spec);
    let container: Dockerode.Container;
    try {
      container = await this.docker.createContainer(createOptions(spec, this.nodeName));
    } catch (err) {
      throw new RuntimeError(`creating ${name}: ${dockerMessage(err)}`, "CreateContainerError");
    }
    try {
      await container.start();
    } catch (err) {
      // A container that never ran is of no use to anyone; leaving it would only block the name.
      await container.remove({ force: true }).catch(() => undefined);
      throw new RuntimeError(`starting ${name}: ${dockerMessage(err)}`, "RunContainerError");
    }
    const started = await this.maybeInspect(container.id);
    if (started === undefined) throw new RuntimeError(`${name} vanished right after it started`, "RunContainerError");
    return started;
  }

  async stop(id: string, graceSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: Math.max(0, Math.ceil(graceSeconds)) });
    } catch (err) {
      const status = statusCodeOf(err);
      // 304: already stopped; 404: already gone. Both are the state the caller asked for.
      if (status === 304 || status === 404) return;
      throw new RuntimeError(`stopping ${id}: ${dockerMessage(err)}`, "KillContainerError");
    }
  }

  async remove(id: string): Promise<void> {
    this.inspected.delete(id);
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      const status = statusCodeOf(err);
      // 409 here means a removal is already in progress.
      if (status === 404 || status === 409) return;
      throw new RuntimeError(`removing ${id}: ${dockerMessage(err)}`, "RemoveContainerError");
    }
  }

  async *logs(id: string, options: LogOptions): AsyncIterable<LogChunk> {
    const { signal } = options;
    if (signal?.aborted) return;
    const container = this.docker.getContainer(id);
    const tail = options.tailLines > 0 ? { tail: options.tailLines } : {};
    try {
      if (!options.follow) {
        const body: unknown = await container.logs({ follow: false, stdout: true, stderr: true, ...tail });
        yield* demuxLogBuffer(Buffer.isBuffer(body) ? body : Buffer.from(String(body ?? "")));
        return;
      }
      const stream = await container.logs({ follow: true, stdout: true, stderr: true, ...tail, abortSignal: signal });
      yield* this.followLogStream(stream, signal);
    } catch (err) {
      if (signal?.aborted) return;
      if (statusCodeOf(err) === 404) throw new RuntimeError(`container ${id} not found`, "NotFound");
      throw err;
    }
  }

  async exec(id: string, command: string[], timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const timedOut = () => new RuntimeError(`${command[0]} in ${id} did not finish within ${timeoutMs} ms`, "ExecTimeout");
    try {
      const exec = await this.docker.getContainer(id).exec({ Cmd: command, AttachStdout: true, AttachStderr: true });
      const output = await exec.start({ hijack: true, stdin: false });
      // The attached output ends when the command exits; it is read only to keep it flowing.
      const ended = await endedWithin(output, deadline - Date.now());
      destroyStream(output);
      // Docker has no call to kill an exec; as with the kubelet, a command past its timeout is left to finish.
      if (!ended) throw timedOut();
      // The daemon may record the exit code a moment after the output has ended.
      for (;;) {
        const info = await exec.inspect();
        if (!info.Running && info.ExitCode !== null) return info.ExitCode;
        if (Date.now() >= deadline) throw timedOut();
        await new Promise((resolve) => setTimeout(resolve, EXEC_POLL_MS));
      }
    } catch (err) {
      if (err instanceof RuntimeError) throw err;
      const status = statusCodeOf(err);
      const reason = status === 404 ? "NotFound" : status === 409 ? "ContainerNotRunning" : "ExecError";
      throw new RuntimeError(`exec in ${id}: ${dockerMessage(err)}`, reason);
    }
  }

  watch(onChange: () => void): () => void {
    this.listeners.add(onChange);
    // One event stream serves every watcher: pod workers each watch, and the daemon need not stream to each.
    this.events ??= this.subscribeEvents();
    return () => {
      this.listeners.delete(onChange);
      if (this.listeners.size > 0) return;
      this.events?.close();
      this.events = undefined;
    };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.events?.close();
    this.events = undefined;
    for (const close of [...this.logClosers]) close();
  }

  /** Follows the daemon's events for this node's containers, reconnecting whenever the stream ends. */
  private subscribeEvents(): { close(): void } {
    let closed = false;
    let current: NodeJS.ReadableStream | undefined;
    let retry: NodeJS.Timeout | undefined;
    const reconnectLater = () => {
      current = undefined;
      if (closed || retry !== undefined) return;
      retry = setTimeout(() => {
        retry = undefined;
        void connect(true);
      }, WATCH_RECONNECT_MS);
    };
    const connect = async (isReconnect: boolean) => {
      try {
        const stream = await this.docker.getEvents({
          filters: { type: ["container"], label: this.labelSelector(), event: WATCHED_EVENTS },
        });
        if (closed) return destroyStream(stream);
        current = stream;
        // Whatever happened while the stream was down went unseen; let the watchers re-list.
        if (isReconnect) this.notify();
        stream.on("data", () => this.notify());
        onceEnded(stream, reconnectLater);
      } catch {
        reconnectLater();
      }
    };
    void connect(false);
    return {
      close: () => {
        closed = true;
        clearTimeout(retry);
        if (current !== undefined) destroyStream(current);
      },
    };
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private async *followLogStream(stream: NodeJS.ReadableStream, signal?: AbortSignal): AsyncIterable<LogChunk> {
    const queue = new ChunkQueue<LogChunk>(
      LOG_HIGH_WATER,
      () => stream.pause(),
      () => stream.resume(),
    );
    const sink = (name: LogChunk["stream"]) =>
      new Writable({
        write(data: Buffer, _encoding, done) {
          queue.push({ stream: name, data });
          done();
        },
      });
    this.docker.modem.demuxStream(stream, sink("stdout"), sink("stderr"));
    const stop = () => {
      queue.end();
      destroyStream(stream);
    };
    onceEnded(stream, (err) => queue.end(signal?.aborted ? undefined : err));
    signal?.addEventListener("abort", stop, { once: true });
    this.logClosers.add(stop);
    try {
      yield* queue;
    } finally {
      signal?.removeEventListener("abort", stop);
      this.logClosers.delete(stop);
      destroyStream(stream);
    }
  }

  private async ensureImage(image: string, policy: ContainerSpec["imagePullPolicy"]): Promise<void> {
    const present = await this.imagePresent(image);
    if (policy === "Never") {
      if (present) return;
      throw new RuntimeError(`image ${image} is not present and imagePullPolicy is Never`, "ErrImageNeverPull");
    }
    if (present && policy === "IfNotPresent") return;
    try {
      await followJsonStream(this.docker, await this.docker.pull(image));
    } catch (err) {
      // "Always" with a local copy: clusters without a registry (like this one) still run what they have.
      if (present) return;
      throw new RuntimeError(`pulling ${image}: ${dockerMessage(err)}`, "ErrImagePull");
    }
  }

  private async imagePresent(image: string): Promise<boolean> {
    try {
      await this.docker.getImage(image).inspect();
      return true;
    } catch (err) {
      if (statusCodeOf(err) === 404) return false;
      throw new RuntimeError(`inspecting image ${image}: ${dockerMessage(err)}`, "ErrImageInspect");
    }
  }

  /** Inspects one container; undefined when it was removed in the meantime. */
  private async maybeInspect(id: string): Promise<RuntimeContainer | undefined> {
    try {
      const container = toRuntimeContainer(await this.docker.getContainer(id).inspect());
      this.inspected.set(id, container);
      return container;
    } catch (err) {
      if (statusCodeOf(err) === 404) return undefined;
      throw err;
    }
  }

  private labelSelector(): string[] {
    return [`${MANAGED_LABEL}=true`, `${NODE_LABEL}=${this.nodeName}`];
  }
}

/** Drains a stream; resolves true once it ends, or false when it has not after timeoutMs. */
function endedWithin(stream: NodeJS.ReadableStream, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), Math.max(0, timeoutMs));
    onceEnded(stream, () => {
      clearTimeout(timer);
      resolve(true);
    });
    stream.resume();
  });
}

/** Calls `ended` once, whichever of end, close or error comes first. */
function onceEnded(stream: NodeJS.ReadableStream, ended: (err?: Error) => void): void {
  let done = false;
  const finish = (err?: Error) => {
    if (done) return;
    done = true;
    ended(err);
  };
  stream.on("end", () => finish());
  stream.on("close", () => finish());
  stream.on("error", (err: Error) => finish(err));
}

export function containerName(spec: ContainerSpec): string {
  return `flotilla_${spec.namespace}_${spec.podName}_${spec.containerName}_${spec.attempt}`;
}

export function createOptions(spec: ContainerSpec, nodeName: string): Dockerode.ContainerCreateOptions {
  const env = containerEnv(
    "0.0.0.0",
    spec.ports.map((port) => ({ name: port.name, port: port.containerPort })),
    spec.env,
  );
  const hasCommand = spec.command.length > 0;
  return {
    name: containerName(spec),
    Image: spec.image,
    Hostname: spec.podName,
    // As in Kubernetes: command replaces the image's entrypoint, args its cmd.
    Entrypoint: hasCommand ? spec.command : undefined,
    Cmd: hasCommand || spec.args.length > 0 ? spec.args : undefined,
    Env: envList(env),
    WorkingDir: spec.workingDir || undefined,
    Labels: containerLabels(spec, nodeName),
    ExposedPorts: Object.fromEntries(spec.ports.map((port) => [portKey(port), {}])),
    HostConfig: {
      PortBindings: portBindings(spec.ports),
      // An init as PID 1 forwards SIGTERM; a shell or httpd as PID 1 ignores it and every stop waits out its grace.
      Init: true,
      // The agent decides about restarts, with its own backoff and attempt numbers.
      RestartPolicy: { Name: "no" },
      NanoCpus: spec.cpuLimitMillis !== undefined ? spec.cpuLimitMillis * 1_000_000 : undefined,
      Memory: spec.memoryLimitBytes,
      // Swap equal to memory means no swap on top, so a limit is a limit (as the kubelet does).
      MemorySwap: spec.memoryLimitBytes,
      ...(spec.dns ? { Dns: spec.dns.nameservers, DnsSearch: spec.dns.search, DnsOptions: spec.dns.options } : {}),
    },
  };
}

function containerLabels(spec: ContainerSpec, nodeName: string): Record<string, string> {
  return {
    [MANAGED_LABEL]: "true",
    [NODE_LABEL]: nodeName,
    [POD_UID_LABEL]: spec.podUid,
    [POD_NAME_LABEL]: spec.podName,
    [NAMESPACE_LABEL]: spec.namespace,
    [CONTAINER_LABEL]: spec.containerName,
    [SPEC_HASH_LABEL]: spec.specHash,
    [ATTEMPT_LABEL]: String(spec.attempt),
    [PORTS_LABEL]: JSON.stringify(spec.ports),
  };
}

function portKey(port: { containerPort: number; protocol: PortRequest["protocol"] }): string {
  return `${port.containerPort}/${port.protocol.toLowerCase()}`;
}

function portBindings(ports: PortRequest[]): Dockerode.PortMap {
  const bindings: Dockerode.PortMap = {};
  for (const port of ports) {
    // An empty HostPort lets docker pick a free one.
    const binding = { HostIp: port.hostIp, HostPort: port.hostPort > 0 ? String(port.hostPort) : "" };
    (bindings[portKey(port)] ??= []).push(binding);
  }
  return bindings;
}

export function toRuntimeContainer(info: Dockerode.ContainerInspectInfo): RuntimeContainer {
  const labels = info.Config.Labels ?? {};
  const state = containerState(info.State.Status);
  const container: RuntimeContainer = {
    id: info.Id,
    podUid: labels[POD_UID_LABEL] ?? "",
    podName: labels[POD_NAME_LABEL] ?? "",
    namespace: labels[NAMESPACE_LABEL] ?? "",
    containerName: labels[CONTAINER_LABEL] ?? "",
    specHash: labels[SPEC_HASH_LABEL] ?? "",
    attempt: Number(labels[ATTEMPT_LABEL] ?? 0),
    state,
    ports: publishedPorts(info),
  };
  const address = state === "running" ? containerAddress(info) : "";
  if (address) container.address = address;
  if (state !== "created") container.startedAt = rfc3339(info.State.StartedAt);
  if (state === "exited") {
    container.exitCode = info.State.ExitCode;
    container.finishedAt = rfc3339(info.State.FinishedAt);
    // Docker stamps StartedAt once start returns, but FinishedAt with containerd's exit time, so a command that
    // exits at once can seem to finish before it started.
    if (container.startedAt && container.finishedAt && container.startedAt > container.finishedAt) {
      container.startedAt = container.finishedAt;
    }
    container.reason = info.State.OOMKilled ? "OOMKilled" : info.State.ExitCode === 0 ? "Completed" : "Error";
  }
  return container;
}

function containerState(status: string): RuntimeContainer["state"] {
  switch (status) {
    case "created":
      return "created";
    case "running":
    case "paused":
    case "restarting":
      return "running";
    default:
      // exited, dead, removing
      return "exited";
  }
}

/** Docker reports the zero time for "never"; anything else is normalised to millisecond RFC 3339. */
function rfc3339(timestamp: string | undefined): string | undefined {
  if (!timestamp || timestamp.startsWith("0001-")) return undefined;
  const parsed = new Date(timestamp);
  return Number.isNaN(parsed.getTime()) ? undefined : parsed.toISOString();
}

/** The container's IPv4 address: on the default bridge if it is there, else the first network's that has one. */
function containerAddress(info: Dockerode.ContainerInspectInfo): string {
  const networks = info.NetworkSettings?.Networks ?? {};
  return networks.bridge?.IPAddress || (Object.values(networks).find((n) => n.IPAddress)?.IPAddress ?? "");
}

/** Requested ports with the host ports docker actually bound; those are only known while the container runs. */
function publishedPorts(info: Dockerode.ContainerInspectInfo): PublishedPort[] {
  const bound = info.NetworkSettings?.Ports ?? {};
  return requestedPorts(info).map((port) => {
    const candidates = bound[portKey(port)] ?? [];
    const wanted = port.hostIp || "0.0.0.0";
    const binding = candidates.find((candidate) => candidate.HostIp === wanted) ?? candidates[0];
    const hostPort = binding ? Number(binding.HostPort) : port.hostPort;
    return { name: port.name, containerPort: port.containerPort, hostIp: port.hostIp, hostPort, protocol: port.protocol };
  });
}

function requestedPorts(info: Dockerode.ContainerInspectInfo): PortRequest[] {
  const label = info.Config.Labels?.[PORTS_LABEL];
  if (label === undefined) return [];
  try {
    const parsed: unknown = JSON.parse(label);
    return Array.isArray(parsed) ? parsed.filter(isPortRequest) : [];
  } catch {
    return [];
  }
}

function isPortRequest(value: unknown): value is PortRequest {
  if (typeof value !== "object" || value === null) return false;
  return (
    "containerPort" in value &&
    typeof value.containerPort === "number" &&
    "hostPort" in value &&
    typeof value.hostPort === "number" &&
    "name" in value &&
    typeof value.name === "string" &&
    "hostIp" in value &&
    typeof value.hostIp === "string" &&
    "protocol" in value &&
    (value.protocol === "TCP" || value.protocol === "UDP")
  );
}

/** The list call's State ("created", "running", "paused", "restarting", "removing", "exited", "dead") as ours. */
function summaryState(state: string): RuntimeContainer["state"] | undefined {
  if (state === "running") return "running";
  if (state === "exited" || state === "dead") return "exited";
  if (state === "created") return "created";
  return undefined;
}
