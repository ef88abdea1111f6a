// Runs one short command for the process driver's exec (what exec probes use): a host process with the
// container's environment and working directory, in its own process group so that a command that overruns its
// timeout is killed together with whatever it started.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { RuntimeError } from "./runtime.js";

export interface CommandOptions {
  env: Record<string, string>;
  cwd: string;
  timeoutMs: number;
}

/** Resolves with the exit code (128 + n for signal n, as a shell reports it). */
export function runCommand(command: string[], options: CommandOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = command;
    if (file === undefined) return reject(new RuntimeError("exec needs a command", "ExecError"));
    const child = spawn(file, args, { env: options.env, cwd: options.cwd, stdio: "ignore", detached: true });
    const timer = setTimeout(() => {
      killGroup(child.pid);
      reject(new RuntimeError(`${file} did not finish within ${options.timeoutMs} ms`, "ExecTimeout"));
    }, options.timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new RuntimeError(`running ${file}: ${err.message}`, "ExecError"));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}
