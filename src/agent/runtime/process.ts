// The process driver, for hosts without Docker: each container is a plain host process, started detached in its
// own session and process group under a tiny /bin/sh wrapper, writing its output straight into files. Nothing ties
// it to the agent, so it outlives an agent crash, and a new ProcessRuntime on the same stateDir adopts it (see
// process-state.ts for the on-disk layout and how a pid is told apart from a recycled one). exec runs a command
// as one more host process with the container's environment (process-exec.ts).
//
// It is not isolation: no namespaces, no cgroups. cpuLimitMillis and memoryLimitBytes are not enforced (an address
// space rlimit would break runtimes such as Node and the JVM that reserve far more than they use), the image is
// ignored, and a process that daemonizes itself (setsid) escapes the group and so escapes stop.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, statSync } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { containerEnv } from "./port-env.js";
import { runCommand } from "./process-exec.js";
import { readLogFiles } from "./process-logs.js";
import { assignPorts, type PortClaims, type PortRange } from "./process-ports.js";
import {
  EXIT_CODE_FILE,
  STDERR_LOG,
  STDOUT_LOG,
  isAlive,
  procStartTime,
  readContainer,
  readPidFile,
  readRecord,
  recordKilled,
  writePidFile,
  writeRecord,
  type PidRecord,
} from "./process-state.js";
import {
  RuntimeError,
  type ContainerSpec,
  type LogChunk,
  type LogOptions,
  type PublishedPort,
  type Runtime,
  type RuntimeContainer,
} from "./runtime.js";

export interface ProcessRuntimeOptions {
  nodeName: string;
  /** Where each container's directory lives; it must survive agent restarts for adoption to work. */
  stateDir: string;
  /** Inclusive range for hostPort 0; default 20000-29999. */
  portRange?: [number, number];
}

const DEFAULT_PORT_RANGE: PortRange = [20000, 29999];
const WATCH_POLL_MS = 500;
const STOP_POLL_MS = 50;
/** SIGKILL takes effect at once unless a process sits in uninterruptible sleep; this bounds that wait. */
const KILL_WAIT_MS = 10_000;
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The wrapper: `sh -c WRAPPER flotilla-wrapper <dir> <command> <args...>`. It records the command's exit status
 * even when no agent is running, forwards SIGTERM/SIGINT to the command (as SIGTERM: sh starts background jobs
 * with SIGINT ignored), and once the command has exited it SIGKILLs whatever is left in its process group, as a
 * container's leftovers die with it. A trapped signal makes `wait` return early with 128+n, so it waits again;
 * a second wait answers 127 when the first one already collected the status. Only shell builtins are used,
 * because the container's env may set a PATH without coreutils.
 */
const RETERM_AFTER_MS = 1000;

const WRAPPER = [
  'dir=$1; shift',
  // Trapped before the command starts: a SIGTERM that comes first must not kill the wrapper and lose the status.
  'child=',
  "trap 'forwarded=1; [ -z \"$child\" ] || kill -TERM \"$child\" 2>/dev/null' TERM INT",
  '"$@" &',
  'child=$!',
  '[ -z "$forwarded" ] || kill -TERM "$child" 2>/dev/null',
  'code=',
  'while :; do',
  '  forwarded=',
  '  wait "$child"; status=$?',
  '  if [ "$status" = 127 ] && [ -n "$code" ]; then break; fi',
  '  code=$status',
  '  [ -n "$forwarded" ] || break',
  'done',
  `printf "%s\\n" "$code" > "$dir/${EXIT_CODE_FILE}"`,
  'kill -KILL 0',
].join("\n");

export class ProcessRuntime implements Runtime {
  readonly name = "process";
  private readonly nodeName: string;
  private readonly stateDir: string;
  private readonly portRange: PortRange;
  /** Ports handed out by starts still in flight, before their spec.json lists them. */
  private readonly pendingPorts = new Set<number>();
  private readonly listeners = new Set<() => void>();
  /** Open log readers, aborted by close(). */
  private readonly logAborts = new Set<() => void>();
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private lastStates: Map<string, string> | undefined;

  constructor(options: ProcessRuntimeOptions) {
    this.nodeName = options.nodeName;
    this.stateDir = options.stateDir;
    this.portRange = options.portRange ?? DEFAULT_PORT_RANGE;
  }

  async version(): Promise<string> {
    return "process";
  }

  async list(): Promise<RuntimeContainer[]> {
    let entries: string[];
    try {
      entries = await readdir(this.stateDir);
    } catch (err) {
      if (errorCode(err) === "ENOENT") return [];
      throw err;
    }
    const containers = await Promise.all(
      entries.filter(isValidId).map((id) => readContainer(join(this.stateDir, id), this.nodeName)),
    );
    return containers.filter((container) => container !== undefined);
  }

  async start(spec: ContainerSpec): Promise<RuntimeContainer> {
    checkStartable(spec);
    const id = newContainerId(spec);
    const dir = join(this.stateDir, id);
    const claimed: number[] = [];
    let pid: number | undefined;
    try {
      await mkdir(dir, { recursive: true });
      const ports = await assignPorts(spec.ports, this.portRange, await this.portClaims(claimed));
      await writeRecord(dir, { id, nodeName: this.nodeName, spec, ports, createdAt: new Date().toISOString() });
      pid = await this.spawnWrapper(dir, spec, ports);
      await writePidFile(dir, { pid, procStart: procStartTime(pid), startedAt: new Date().toISOString() });
    } catch (err) {
      // Without its directory nobody could ever find the process again, so it must not outlive this start.
      if (pid !== undefined) sendSignal(-pid, "SIGKILL");
      await rm(dir, { recursive: true, force: true });
      if (err instanceof RuntimeError) throw err;
      throw new RuntimeError(`starting ${id}: ${err instanceof Error ? err.message : String(err)}`, "RunContainerError");
    } finally {
      for (const port of claimed) this.pendingPorts.delete(port);
    }
    this.notify();
    const started = await readContainer(dir, this.nodeName);
    if (started === undefined) throw new RuntimeError(`${id} vanished right after it started`, "RunContainerError");
    return started;
  }

  async stop(id: string, graceSeconds: number): Promise<void> {
    const dir = this.dirOf(id);
    const pid = dir === undefined ? undefined : await readPidFile(dir);
    if (dir === undefined || pid === undefined || !isAlive(pid)) return;
    // The wrapper passes SIGTERM to the command alone, as docker's init does. A command forked but not yet
    // exec'd can swallow it (the fork still runs the wrapper's trap), so it is forwarded once more after a second.
    const graceMs = Math.max(0, graceSeconds) * 1000;
    sendSignal(pid.pid, "SIGTERM");
    if (!(await waitUntilDead(pid, Math.min(graceMs, RETERM_AFTER_MS)))) {
      sendSignal(pid.pid, "SIGTERM");
      await waitUntilDead(pid, Math.max(0, graceMs - RETERM_AFTER_MS));
    }
    // Also when the wrapper is gone: it may have died before it could trap SIGTERM, leaving the command behind.
    sendSignal(-pid.pid, "SIGKILL");
    await waitUntilDead(pid, KILL_WAIT_MS);
    await recordKilled(dir);
  }

  async remove(id: string): Promise<void> {
    const dir = this.dirOf(id);
    if (dir === undefined) return;
    const pid = await readPidFile(dir);
    if (pid !== undefined && isAlive(pid)) {
      sendSignal(-pid.pid, "SIGKILL");
      await waitUntilDead(pid, KILL_WAIT_MS);
    }
    await rm(dir, { recursive: true, force: true });
  }

  async *logs(id: string, options: LogOptions): AsyncIterable<LogChunk> {
    const dir = this.dirOf(id);
    if (dir === undefined || (await readRecord(dir)) === undefined) {
      throw new RuntimeError(`container ${id} not found`, "NotFound");
    }
    if (options.signal?.aborted) return;
    const controller = new AbortController();
    const abort = () => controller.abort();
    options.signal?.addEventListener("abort", abort, { once: true });
    this.logAborts.add(abort);
    const hasExited = async () => {
      const container = await readContainer(dir, this.nodeName);
      return container === undefined || container.state === "exited";
    };
    try {
      yield* readLogFiles(dir, { ...options, signal: controller.signal }, hasExited);
    } finally {
      options.signal?.removeEventListener("abort", abort);
      this.logAborts.delete(abort);
    }
  }

  async exec(id: string, command: string[], timeoutMs: number): Promise<number> {
    const dir = this.dirOf(id);
    const record = dir === undefined ? undefined : await readRecord(dir);
    if (dir === undefined || record === undefined) throw new RuntimeError(`container ${id} not found`, "NotFound");
    if ((await readContainer(dir, this.nodeName))?.state !== "running") {
      throw new RuntimeError(`container ${id} is not running`, "ContainerNotRunning");
    }
    // The same environment and directory the container's own process got; it has no filesystem of its own.
    return runCommand(command, { env: processEnv(record.spec, record.ports), cwd: record.spec.workingDir || dir, timeoutMs });
  }

  watch(onChange: () => void): () => void {
    this.listeners.add(onChange);
    if (this.poller === undefined) {
      this.poller = setInterval(() => void this.pollStates(), WATCH_POLL_MS);
      this.poller.unref();
      void this.pollStates();
    }
    return () => {
      this.listeners.delete(onChange);
      if (this.listeners.size === 0) this.stopPolling();
    };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.stopPolling();
    for (const abort of [...this.logAborts]) abort();
  }

  private async spawnWrapper(dir: string, spec: ContainerSpec, ports: PublishedPort[]): Promise<number> {
    const stdout = openSync(join(dir, STDOUT_LOG), "a");
    const stderr = openSync(join(dir, STDERR_LOG), "a");
    try {
      const child = spawn("/bin/sh", ["-c", WRAPPER, "flotilla-wrapper", dir, ...spec.command, ...spec.args], {
        cwd: spec.workingDir || dir,
        env: processEnv(spec, ports),
        // Its own session and process group: it survives the agent, and stop can signal the whole group.
        detached: true,
        stdio: ["ignore", stdout, stderr],
      });
      if (child.pid === undefined) {
        const [err] = await once(child, "error");
        throw new RuntimeError(`spawning /bin/sh: ${err instanceof Error ? err.message : String(err)}`, "RunContainerError");
      }
      child.on("error", () => undefined);
      // The instance that spawned a process hears of its exit at once; others poll.
      child.once("exit", () => this.notify());
      child.unref();
      return child.pid;
    } finally {
      closeSync(stdout);
      closeSync(stderr);
    }
  }

  /** Ports of containers that have not exited, plus those claimed by starts in flight; claims land in `claimed`. */
  private async portClaims(claimed: number[]): Promise<PortClaims> {
    const live = new Set<number>();
    for (const container of await this.list()) {
      if (container.state !== "exited") for (const port of container.ports) live.add(port.hostPort);
    }
    return {
      has: (port) => live.has(port) || this.pendingPorts.has(port),
      add: (port) => {
        this.pendingPorts.add(port);
        claimed.push(port);
      },
    };
  }

  private async pollStates(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const states = new Map((await this.list()).map((container) => [container.id, container.state]));
      const changed = this.lastStates !== undefined && !sameStates(this.lastStates, states);
      this.lastStates = states;
      if (changed) this.notify();
    } catch {
      // The next tick tries again; a transient read error is no state change.
    } finally {
      this.polling = false;
    }
  }

  private stopPolling(): void {
    clearInterval(this.poller);
    this.poller = undefined;
    this.lastStates = undefined;
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /** Undefined for an id that cannot be one of ours, which also keeps ids from escaping stateDir. */
  private dirOf(id: string): string | undefined {
    return isValidId(id) ? join(this.stateDir, id) : undefined;
  }
}

function checkStartable(spec: ContainerSpec): void {
  if (spec.command.length === 0) {
    throw new RuntimeError(
      `container ${spec.containerName}: the process driver needs a command (it has no image entrypoint to fall back on)`,
      "CreateContainerError",
    );
  }
  if (spec.workingDir && !isDirectory(spec.workingDir)) {
    throw new RuntimeError(`working directory ${spec.workingDir} does not exist on this host`, "CreateContainerError");
  }
}

function processEnv(spec: ContainerSpec, ports: PublishedPort[]): Record<string, string> {
  return containerEnv(
    ports[0]?.hostIp,
    ports.map((port) => ({ name: port.name, port: port.hostPort })),
    spec.env,
    // Unlike in a container, the image supplies no PATH; the agent's own is the best guess.
    { PATH: process.env.PATH ?? DEFAULT_PATH, HOSTNAME: spec.podName },
  );
}

/** "<podUid-short>-<container>-<attempt>-<random>": readable in `ls`, unique across agent restarts. */
function newContainerId(spec: ContainerSpec): string {
  const safe = (text: string) => text.replace(/[^A-Za-z0-9_.-]/g, "_");
  const random = randomBytes(3).toString("hex");
  return `${safe(spec.podUid.slice(0, 8))}-${safe(spec.containerName)}-${spec.attempt}-${random}`;
}

function isValidId(id: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id);
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Signals a pid (or, negative, a process group); one that is already gone is fine. */
function sendSignal(target: number, signal: NodeJS.Signals): void {
  try {
    process.kill(target, signal);
  } catch (err) {
    if (errorCode(err) !== "ESRCH") throw err;
  }
}

async function waitUntilDead(pid: PidRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, STOP_POLL_MS));
  }
  return true;
}

function sameStates(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, state] of a) if (b.get(id) !== state) return false;
  return true;
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null || !("code" in err)) return undefined;
  return typeof err.code === "string" ? err.code : undefined;
}
