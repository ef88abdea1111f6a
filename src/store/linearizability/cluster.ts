// A cluster of real `flotilla master` processes for the Jepsen-style test: start, kill -9, pause (SIGSTOP),
// resume, restart, find the leader, and stop everything.
// Roles: the nemesis drives faults through it; jepsen-main and the e2e test own its lifetime.
// Invariants: every child it spawns is tracked in `procs` and ended by `stop()`; a paused process is resumed before
// it is killed (so none is left stopped); each master keeps its data directory across restarts (a restart is a
// crash recovery, not a fresh member). Only loopback addresses are used.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Etcd3 } from "etcd3";

export interface MasterSpec {
  name: string;
  api: string;
  raft: string;
  etcd: string;
}

export interface ClusterOptions {
  masters: MasterSpec[];
  /** A directory this cluster may own (one subdirectory per master). */
  dir: string;
  /** The built CLI (default: dist/src/cli/main.js under the working directory). */
  cli?: string;
  token?: string;
  /** A command prefix to run a master under (e.g. `ip netns exec NS`), or none. */
  exec?: (name: string) => string[];
}

/** Three masters on `127.0.2.{1,2,3}` (by default), each with API, Raft and etcd ports from `basePort`. */
export function loopbackMasters(basePort = 19000, hostPrefix = "127.0.2.", count = 3): MasterSpec[] {
  return Array.from({ length: count }, (_, i) => {
    const host = `${hostPrefix}${i + 1}`;
    return { name: `m${i + 1}`, api: `${host}:${basePort}`, raft: `${host}:${basePort + 1}`, etcd: `${host}:${basePort + 2}` };
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Cluster {
  readonly masters: MasterSpec[];
  private readonly procs = new Map<string, ChildProcess>();
  private readonly paused = new Set<string>();
  private readonly logs = new Map<string, string[]>();

  constructor(private readonly o: ClusterOptions) {
    this.masters = o.masters;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.masters.map((m) => this.start(m.name)));
  }

  isRunning(name: string): boolean {
    const p = this.procs.get(name);
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  isPaused(name: string): boolean {
    return this.paused.has(name);
  }

  /** The last lines a master printed (for diagnosing a failed start or a violation). */
  log(name: string): string[] {
    return this.logs.get(name) ?? [];
  }

  /** Starts (or restarts) one master and waits until it listens. */
  async start(name: string): Promise<void> {
    const m = this.spec(name);
    const data = join(this.o.dir, m.name);
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, "admin.token"), `${this.o.token ?? "admin.jepsen-token"}\n`);
    const initial = this.masters.map((x) => `${x.name}=${x.raft}`).join(",");
    const cli = this.o.cli ?? join(process.cwd(), "dist", "src", "cli", "main.js");
    const args = [cli, "master", "--name", m.name, "--listen", m.api, "--data", data, "--initial-cluster", initial, "--etcd-listen", m.etcd];
    // `ip netns exec` execs (no fork), so the child's pid stays the master's: signals reach it directly.
    const [cmd, ...pre] = [...(this.o.exec?.(name) ?? []), process.execPath];
    const child = spawn(cmd, [...pre, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.procs.set(name, child);
    const lines: string[] = [];
    this.logs.set(name, lines);
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start: ${lines.slice(-5).join(" | ")}`)), 60_000);
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on("line", (l) => {
          lines.push(l);
          if (lines.length > 200) lines.shift();
          if (/master listening/.test(l)) {
            clearTimeout(timer);
            resolve();
          }
        });
      }
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before listening: ${lines.slice(-5).join(" | ")}`));
      });
    });
    await ready;
  }

  /** kill -9 (resuming it first if paused, so the kernel delivers the kill at once). */
  async kill(name: string): Promise<void> {
    const p = this.procs.get(name);
    if (!p || !this.isRunning(name)) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    this.paused.delete(name);
    await exited;
  }

  pause(name: string): void {
    if (this.isRunning(name) && !this.paused.has(name)) {
      this.procs.get(name)!.kill("SIGSTOP");
      this.paused.add(name);
    }
  }

  resume(name: string): void {
    if (this.paused.delete(name) && this.isRunning(name)) this.procs.get(name)!.kill("SIGCONT");
  }

  /** The leader as the running, unpaused masters report it, or undefined (no agreement yet). */
  async leader(timeoutMs = 2000): Promise<string | undefined> {
    const up = this.masters.filter((m) => this.isRunning(m.name) && !this.paused.has(m.name));
    const statuses = await Promise.all(up.map((m) => memberStatus(m, timeoutMs)));
    for (let i = 0; i < up.length; i++) {
      const s = statuses[i];
      if (s && s.memberId === s.leader) return up[i].name;
    }
    return undefined;
  }

  /** Resumes paused masters, restarts killed ones, and waits until a leader answers and every master serves reads. */
  async heal(timeoutMs = 60_000): Promise<void> {
    for (const m of this.masters) this.resume(m.name);
    for (const m of this.masters) if (!this.isRunning(m.name)) await this.start(m.name);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await this.leader()) !== undefined) {
        const reads = await Promise.all(this.masters.map((m) => canRead(m)));
        if (reads.every(Boolean)) return;
      }
      await sleep(250);
    }
    throw new Error("the cluster did not recover a leader serving every master");
  }

  /** Stops every master (resumed first), and waits for them to exit. */
  async stop(): Promise<void> {
    for (const m of this.masters) this.resume(m.name);
    await Promise.all(this.masters.map((m) => this.kill(m.name)));
  }

  private spec(name: string): MasterSpec {
    const m = this.masters.find((x) => x.name === name);
    if (!m) throw new Error(`no master ${name}`);
    return m;
  }
}

function oneShotClient(m: MasterSpec, timeoutMs: number): Etcd3 {
  return new Etcd3({ hosts: `http://${m.etcd}`, dialTimeout: timeoutMs, defaultCallOptions: () => ({ deadline: Date.now() + timeoutMs }) });
}

async function memberStatus(m: MasterSpec, timeoutMs: number): Promise<{ memberId: string; leader: string } | undefined> {
  const c = oneShotClient(m, timeoutMs);
  try {
    const s = await c.maintenance.status();
    return { memberId: String(s.header.member_id), leader: String(s.leader) };
  } catch {
    return undefined;
  } finally {
    c.close();
  }
}

async function canRead(m: MasterSpec): Promise<boolean> {
  const c = oneShotClient(m, 2000);
  try {
    await c.get("/jepsen/health").string();
    return true;
  } catch {
    return false;
  } finally {
    c.close();
  }
}
