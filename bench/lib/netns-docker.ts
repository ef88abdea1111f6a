// A private dockerd inside a network namespace a benchmark made, so that its bridge, its iptables rules, its
// published ports and its containers' addresses exist only in that namespace. The recipe is the one CI uses
// (nsenter --net, not `ip netns exec`, which remounts /sys and hides the cgroup mounts dockerd needs), kept here so
// the benchmarks stand alone. Per namespace NS: socket and pid file in /run/NS, exec root /run/NS/exec, data root
// /var/lib/NS-docker; all of it is removed when the daemon stops, with or without a daemon that still answers.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync } from "node:fs";
import Dockerode from "dockerode";
import { deadline, sleep } from "./timing.js";

export interface NamespaceDockerPaths {
  runDir: string;
  socket: string;
  pidFile: string;
  execRoot: string;
  dataRoot: string;
}

export function namespaceDockerPaths(netns: string): NamespaceDockerPaths {
  const runDir = `/run/${netns}`;
  return { runDir, socket: `${runDir}/docker.sock`, pidFile: `${runDir}/dockerd.pid`, execRoot: `${runDir}/exec`, dataRoot: `/var/lib/${netns}-docker` };
}

export interface NamespaceDocker {
  netns: string;
  paths: NamespaceDockerPaths;
  docker: Dockerode;
  pid: number;
  /** The daemon's version, e.g. "20.10.24+dfsg1". */
  version: string;
  /** Removes every container, stops the daemon (SIGTERM, then SIGKILL) and removes its state. */
  stop(): Promise<void>;
}

type Log = (line: string) => void;

const procAlive = (pid: number) => pid > 0 && existsSync(`/proc/${pid}`);

/**
 * Starts dockerd in `netns` (which must exist) and waits until it answers. Its output goes to `logFile`. On any
 * failure the daemon is stopped and its state removed before this rejects.
 */
export async function startNamespaceDocker(netns: string, logFile: string, log: Log, ms = 60_000): Promise<NamespaceDocker> {
  const paths = namespaceDockerPaths(netns);
  spawnSync("mkdir", ["-p", paths.runDir]);
  const fd = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(
      "nsenter",
      [`--net=/run/netns/${netns}`, "dockerd", "--host", `unix://${paths.socket}`, "--pidfile", paths.pidFile, "--data-root", paths.dataRoot, "--exec-root", paths.execRoot],
      { stdio: ["ignore", fd, fd] },
    );
  } finally {
    closeSync(fd);
  }
  let exited: string | undefined;
  child.once("error", (err) => (exited = `spawn error: ${err.message}`));
  child.once("exit", (code, signal) => (exited = signal ?? `exit ${code}`));
  const pid = child.pid ?? -1;
  const docker = new Dockerode({ socketPath: paths.socket });
  const stop = async () => {
    await stopNamespaceDocker(netns, docker, pid, log);
  };
  try {
    const version = await deadline(`dockerd in ${netns} to answer`, ms, (async () => {
      for (;;) {
        if (exited !== undefined) throw new Error(`dockerd exited (${exited}): ${tailOf(logFile)}`);
        try {
          if (existsSync(paths.socket)) return (await docker.version()).Version;
        } catch {
          // not yet
        }
        await sleep(100);
      }
    })());
    return { netns, paths, docker, pid, version, stop };
  } catch (err) {
    await stop().catch((e: unknown) => log(`stopping dockerd in ${netns}: ${String(e)}`));
    throw err;
  }
}

function tailOf(file: string, chars = 1500): string {
  try {
    return readFileSync(file, "utf8").slice(-chars).trim();
  } catch {
    return "";
  }
}

/** The orderly way: containers removed through the API, the daemon stopped, what is left killed, state removed. */
async function stopNamespaceDocker(netns: string, docker: Dockerode, pid: number, log: Log): Promise<void> {
  if (procAlive(pid)) {
    try {
      await deadline(`removing the containers of dockerd in ${netns}`, 60_000, (async () => {
        const all = await docker.listContainers({ all: true });
        await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
      })());
    } catch (err) {
      log(`dockerd in ${netns}: ${String(err)}; stopping it anyway`);
    }
    process.kill(pid, "SIGTERM");
    const end = Date.now() + 30_000;
    while (procAlive(pid) && Date.now() < end) await sleep(100);
    if (procAlive(pid)) {
      log(`dockerd in ${netns} (pid ${pid}) did not stop within 30 s: SIGKILL`);
      process.kill(pid, "SIGKILL");
    }
  }
  removeNamespaceDockerLeftovers(netns, log);
}

/**
 * The synchronous way, for process exit, a second Ctrl-C and runs that were killed: containers removed with the
 * docker CLI while the daemon answers, the daemon stopped (pid from its pid file or `pid`), then what is left
 * killed and the state removed. Every step is bounded; none throws.
 */
export function stopNamespaceDockerSync(netns: string, log: Log, pid?: number): void {
  const paths = namespaceDockerPaths(netns);
  const daemon = pid ?? Number(readOr(paths.pidFile, "").trim());
  if (Number.isInteger(daemon) && procAlive(daemon) && inNetns(daemon, netns)) {
    const host = ["-H", `unix://${paths.socket}`];
    const ids = spawnSync("docker", [...host, "ps", "-aq"], { encoding: "utf8", timeout: 15_000 }).stdout?.trim().split(/\s+/).filter((s) => s !== "") ?? [];
    if (ids.length > 0) spawnSync("docker", [...host, "rm", "-f", "-v", ...ids], { timeout: 30_000, stdio: "ignore" });
    try {
      process.kill(daemon, "SIGTERM");
    } catch {
      // gone already
    }
    const end = Date.now() + 20_000;
    while (procAlive(daemon) && Date.now() < end) sleepSync(100);
    if (procAlive(daemon)) {
      log(`dockerd in ${netns} (pid ${daemon}) did not stop within 20 s: SIGKILL`);
      try {
        process.kill(daemon, "SIGKILL");
      } catch {
        // gone already
      }
    }
  }
  removeNamespaceDockerLeftovers(netns, log);
}

/**
 * After the daemon: any process still in the namespace (containerd, shims and docker-proxy outlive a killed
 * dockerd) or in one of its containers' cgroups is killed by pid, anything still mounted under the daemon's
 * directories is unmounted, and the directories are removed.
 */
function removeNamespaceDockerLeftovers(netns: string, log: Log): void {
  const paths = namespaceDockerPaths(netns);
  // Containers whose daemon was killed keep running, in namespaces of their own: found by their cgroups.
  const cgroups = containerIds(paths.dataRoot).flatMap(containerCgroups);
  const left = [...new Set([...processesInNetns(netns), ...cgroups.flatMap(cgroupProcs)])].filter((p) => p !== process.pid);
  if (left.length > 0) {
    log(`killing what dockerd left in ${netns}: pids ${left.join(", ")}`);
    for (const p of left) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // gone already
      }
    }
    const end = Date.now() + 5000;
    while (left.some(procAlive) && Date.now() < end) sleepSync(50);
  }
  for (const dir of cgroups) {
    try {
      rmdirSync(dir);
    } catch {
      // busy or gone: the kernel frees it once empty
    }
  }
  const mounts = readOr("/proc/self/mountinfo", "")
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(`${paths.dataRoot}/`) || m === paths.dataRoot || m.startsWith(`${paths.execRoot}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync("umount", ["-l", m], { timeout: 10_000, stdio: "ignore" });
  for (const dir of [paths.dataRoot, paths.runDir]) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      log(`removing ${dir}: ${String(err)}`);
    }
  }
}

/** Pids of the processes whose network namespace is /run/netns/<netns>. */
export function processesInNetns(netns: string): number[] {
  let want: string;
  try {
    want = `net:[${statSync(`/run/netns/${netns}`).ino}]`;
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/net`) === want) pids.push(Number(entry));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

/** The ids of the containers a daemon with this data root made (each has a directory under containers/). */
function containerIds(dataRoot: string): string[] {
  try {
    return readdirSync(`${dataRoot}/containers`).filter((id) => /^[0-9a-f]{64}$/.test(id));
  } catch {
    return [];
  }
}

/** The cgroup directories of a container: cgroupfs driver (v1 hierarchies or v2) or systemd driver. */
function containerCgroups(id: string): string[] {
  const roots = ["/sys/fs/cgroup", ...readdirOr("/sys/fs/cgroup").map((h) => `/sys/fs/cgroup/${h}`)];
  return roots.flatMap((root) => [`${root}/docker/${id}`, `${root}/system.slice/docker-${id}.scope`]).filter((dir) => existsSync(`${dir}/cgroup.procs`));
}

function cgroupProcs(dir: string): number[] {
  return readOr(`${dir}/cgroup.procs`, "").split("\n").filter((l) => l !== "").map(Number);
}

function readdirOr(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function inNetns(pid: number, netns: string): boolean {
  return processesInNetns(netns).includes(pid);
}

function readOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return fallback;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
