// Child processes of the proxy bench, each started inside the bench's network namespace with `nsenter --net`
// (which execs the command, so the pid is the command's own), its output appended to a log file and watched line by
// line. Every child's stdin is a pipe this process holds, and all of them are killed by killAll().
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { deadline } from "./timing.js";

const children = new Set<ChildProcess>();

export function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  log: string;
  /** Resolves on exit (with the code or signal); never rejects. */
  exited: Promise<string>;
  /** Waits for the next stdout line matching `re`; rejects if the process exits first or after `ms`. */
  nextLine(re: RegExp, ms: number, label: string): Promise<RegExpExecArray>;
  /** All of stdout so far. */
  stdout(): string;
}

export function tail(file: string, chars = 2000): string {
  try {
    return readFileSync(file, "utf8").slice(-chars).trim();
  } catch {
    return "";
  }
}

/**
 * Starts `cmd args` inside the namespace (`nsenter --net`, which execs it: the pid is the command's own), stdout
 * and stderr appended to a log file. Its stdin is a pipe this process holds: our own children exit when it closes.
 */
export function startIn(netns: string, dir: string, name: string, cmd: string, args: string[]): Proc {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, "a");
  const child = spawn("nsenter", [`--net=/run/netns/${netns}`, cmd, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  children.add(child);
  child.stdin!.on("error", () => {});
  let out = "";
  const waiters = new Set<(line: string) => void>();
  const exited = new Promise<string>((resolveExit) => {
    child.once("error", (err) => resolveExit(`spawn error: ${err.message}`));
    child.once("exit", (code, signal) => resolveExit(signal ?? `exit ${code}`));
  });
  void exited.then(() => children.delete(child));
  child.once("close", () => closeSync(fd));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    writeSync(fd, `${line}\n`);
    out += `${line}\n`;
    for (const w of [...waiters]) w(line);
  });
  child.stderr!.on("data", (d: Buffer) => writeSync(fd, d));
  const nextLine = (re: RegExp, ms: number, label: string) =>
    deadline(label, ms, new Promise<RegExpExecArray>((resolveLine, reject) => {
      const onLine = (line: string) => {
        const m = re.exec(line);
        if (!m) return;
        waiters.delete(onLine);
        resolveLine(m);
      };
      waiters.add(onLine);
      void exited.then((how) => {
        if (!waiters.has(onLine)) return;
        waiters.delete(onLine);
        reject(new Error(`${name} exited (${how}) before ${label}: ${tail(log)}`));
      });
    }));
  return { name, child, pid: child.pid ?? -1, log, exited, nextLine, stdout: () => out };
}

/** SIGTERM (so a profiled child writes its profile), then SIGKILL if it is not gone within `ms`. */
export async function stopProc(p: Proc, ms = 10_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill("SIGTERM");
  try {
    await deadline(`${p.name} to exit`, ms, p.exited);
  } catch (err) {
    p.child.kill("SIGKILL");
    await deadline(`${p.name} to exit after SIGKILL`, 5000, p.exited);
    throw err;
  }
}

/** Runs a command to completion (no namespace); throws with its stderr when it fails. */
export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 15_000 });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.signal ?? `exit ${r.status}`}): ${r.stderr.trim()}`);
  return r.stdout;
}

