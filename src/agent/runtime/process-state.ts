// What the process driver keeps on disk, one directory per container, so that a restarted agent can adopt the
// processes a previous one started:
//
//   <stateDir>/<id>/spec.json    the ContainerSpec, the node and the host ports assigned (written before spawn)
//                   stdout.log   the process's stdout and stderr, written by the process itself (no pipes)
//                   stderr.log
//                   pid          "<pid> <start time in clock ticks> <startedAt>", written right after spawn
//                   exit-code    written by the wrapper shell when the command exits; its mtime is finishedAt
//
// State, in order: an exit-code file means exited; no pid file means created; a pid whose /proc start time still
// matches means running (a recycled pid has another start time); otherwise the wrapper was killed before it could
// record anything, which only SIGKILL does, so it counts as exit 137.
import { readFileSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ContainerSpec, PublishedPort, RuntimeContainer } from "./runtime.js";

export const SPEC_FILE = "spec.json";
export const STDOUT_LOG = "stdout.log";
export const STDERR_LOG = "stderr.log";
export const PID_FILE = "pid";
export const EXIT_CODE_FILE = "exit-code";

/** The exit status a shell reports for SIGKILL, which is also what docker reports. */
export const KILLED_EXIT_CODE = 137;

export interface ContainerRecord {
  id: string;
  nodeName: string;
  spec: ContainerSpec;
  ports: PublishedPort[];
  createdAt: string;
}

export interface PidRecord {
  pid: number;
  /** Field 22 of /proc/<pid>/stat at spawn; empty where there is no /proc. */
  procStart: string;
  startedAt: string;
}

export async function writeRecord(dir: string, record: ContainerRecord): Promise<void> {
  await writeFile(join(dir, SPEC_FILE), JSON.stringify(record, null, 2) + "\n");
}

export async function readRecord(dir: string): Promise<ContainerRecord | undefined> {
  const text = await readOptional(join(dir, SPEC_FILE));
  if (text === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return isContainerRecord(parsed) ? parsed : undefined;
  } catch {
    // Half-written by an agent that crashed mid-start: nothing was spawned from it.
    return undefined;
  }
}

function isContainerRecord(value: unknown): value is ContainerRecord {
  return (
    typeof value === "object" &&
    value !== null &&
    "id" in value &&
    typeof value.id === "string" &&
    "nodeName" in value &&
    typeof value.nodeName === "string" &&
    "spec" in value &&
    typeof value.spec === "object" &&
    "ports" in value &&
    Array.isArray(value.ports)
  );
}

export async function writePidFile(dir: string, record: PidRecord): Promise<void> {
  await writeFile(join(dir, PID_FILE), `${record.pid} ${record.procStart || "-"} ${record.startedAt}\n`);
}

export async function readPidFile(dir: string): Promise<PidRecord | undefined> {
  const text = await readOptional(join(dir, PID_FILE));
  const [pid, procStart, startedAt] = (text ?? "").trim().split(" ");
  if (!pid || !Number.isInteger(Number(pid)) || startedAt === undefined) return undefined;
  return { pid: Number(pid), procStart: procStart === "-" ? "" : procStart, startedAt };
}

export interface ExitRecord {
  code: number;
  finishedAt: string;
}

/** Undefined while the file is absent or still being written. */
export async function readExitFile(dir: string): Promise<ExitRecord | undefined> {
  const path = join(dir, EXIT_CODE_FILE);
  const text = await readOptional(path);
  // The trailing newline tells a complete record from one caught mid-write.
  if (text === undefined || !/^\d+\n$/.test(text)) return undefined;
  try {
    return { code: Number(text.trim()), finishedAt: (await stat(path)).mtime.toISOString() };
  } catch {
    return undefined;
  }
}

/** Records an exit the wrapper could not record itself (it was SIGKILLed); an exit it did record is kept. */
export async function recordKilled(dir: string): Promise<void> {
  try {
    await writeFile(join(dir, EXIT_CODE_FILE), `${KILLED_EXIT_CODE}\n`, { flag: "wx" });
  } catch {
    // Already there, or the directory was removed meanwhile: either way there is nothing to add.
  }
}

interface ProcStat {
  state: string;
  startTime: string;
}

/** Parses /proc/<pid>/stat; the command name in parentheses may itself hold spaces and parentheses. */
function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
  return { state: fields[0], startTime: fields[19] };
}

/** The start time to record for a process just spawned (and not yet reaped, so /proc still has it). */
export function procStartTime(pid: number): string {
  return readProcStat(pid)?.startTime ?? "";
}

/** True when `record.pid` is still the process we spawned and has not exited (zombies have exited). */
export function isAlive(record: PidRecord): boolean {
  if (record.procStart === "") return signalZeroSucceeds(record.pid);
  const current = readProcStat(record.pid);
  if (current === undefined || current.startTime !== record.procStart) return false;
  return current.state !== "Z" && current.state !== "X";
}

function signalZeroSucceeds(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Reads one container's state; undefined when the directory holds no (complete) container of `nodeName`. */
export async function readContainer(dir: string, nodeName: string): Promise<RuntimeContainer | undefined> {
  const record = await readRecord(dir);
  if (record === undefined || record.nodeName !== nodeName) return undefined;
  const base = baseContainer(record);
  const exit = await readExitFile(dir);
  const pid = await readPidFile(dir);
  if (exit !== undefined) return exited(base, exit, pid?.startedAt);
  if (pid === undefined) return { ...base, state: "created" };
  if (isAlive(pid)) return { ...base, state: "running", startedAt: pid.startedAt };
  // It may have recorded its exit between the first read and the liveness check.
  const lateExit = await readExitFile(dir);
  if (lateExit !== undefined) return exited(base, lateExit, pid.startedAt);
  return { ...base, state: "exited", startedAt: pid.startedAt, exitCode: KILLED_EXIT_CODE, reason: "Error" };
}

function baseContainer(record: ContainerRecord): Omit<RuntimeContainer, "state"> {
  const { spec } = record;
  return {
    id: record.id,
    podUid: spec.podUid,
    podName: spec.podName,
    namespace: spec.namespace,
    containerName: spec.containerName,
    specHash: spec.specHash,
    attempt: spec.attempt,
    ports: record.ports,
  };
}

function exited(base: Omit<RuntimeContainer, "state">, exit: ExitRecord, startedAt?: string): RuntimeContainer {
  return {
    ...base,
    state: "exited",
    startedAt,
    exitCode: exit.code,
    finishedAt: exit.finishedAt,
    reason: exit.code === 0 ? "Completed" : "Error",
  };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
}
