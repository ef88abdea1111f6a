// Real `flotilla` processes for end-to-end tests: the built CLI (dist/), run as a user would run it.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

export const CLI = join(process.cwd(), "dist", "src", "cli", "main.js");

export function requireBuild(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first ('npm test' does it)`);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one CLI command to completion. */
export function cli(config: string, ...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [CLI, "--config", config, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export interface Daemon {
  process: ChildProcess;
  output: string[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts a long-running CLI command and waits for a line matching `ready` (or for it to exit). */
export async function daemon(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on("line", (l) => output.push(l));
  const d: Daemon = {
    process: child,
    output,
    exited,
    async kill(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${ready}: ${output.slice(-5).join(" | ")}`)), 60_000);
    const check = setInterval(() => {
      if (output.some((l) => ready.test(l))) {
        clearInterval(check);
        clearTimeout(timer);
        resolve();
      }
    }, 50);
    void exited.then((code) => {
      clearInterval(check);
      clearTimeout(timer);
      if (!output.some((l) => ready.test(l))) reject(new Error(`exited with ${code} before ${ready}: ${output.slice(-5).join(" | ")}`));
    });
  });
  return d;
}
