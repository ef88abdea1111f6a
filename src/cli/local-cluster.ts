// `flotilla up`: a whole cluster on one machine, as separate processes on 127.0.0.x addresses. The master listens
// on 127.0.0.1, agent N on 127.0.0.(N+1), and pods publish their ports on their agent's address. Everything
// lives under one data directory: a folder per process, their logs, and the client config flotilla.yaml.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { ApiClient } from "../api/client.js";
import { writeConfig } from "../api/config.js";
import type { CreateTokenResponse } from "../gen/flotilla/v1/cluster.js";
import type { NodeList } from "../gen/flotilla/v1/node.js";
import { createRuntime, type RuntimeKind } from "../agent/runtime/index.js";

export interface LocalClusterOptions {
  masters: number;
  agents: number;
  driver: RuntimeKind;
  dataDir: string;
  /** Port of the (first) master's API. */
  port: number;
  /** Keep containers and processes of pods after stop. */
  keep: boolean;
  say: (line: string) => void;
  /** Extra flags for the master (tests shorten intervals). */
  masterArgs?: string[];
}

interface Child {
  name: string;
  process: ChildProcess;
}

export const CONFIG_FILE = "flotilla.yaml";

function cliPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), "main.js");
}

/** Services' VIPs in 127.0.0.0/8: any address there binds with no set-up, so a local cluster needs no root. */
const LOCAL_SERVICE_RANGE = ["--service-cidr", "127.96.0.0/16"];

export class LocalCluster {
  private readonly children: Child[] = [];
  readonly dataDir: string;
  readonly configPath: string;
  client?: ApiClient;

  constructor(private readonly o: LocalClusterOptions) {
    if (![1, 3, 5].includes(o.masters)) throw new Error("--masters: must be 1, 3 or 5 (a Raft group needs an odd size to tolerate failures)");
    if (!Number.isInteger(o.agents) || o.agents < 0 || o.agents > 200) throw new Error("--agents: must be between 0 and 200");
    this.dataDir = resolve(o.dataDir);
    this.configPath = join(this.dataDir, CONFIG_FILE);
  }

  agentNames(): string[] {
    return Array.from({ length: this.o.agents }, (_, i) => `agent-${i + 1}`);
  }

  async start(): Promise<void> {
    mkdirSync(join(this.dataDir, "logs"), { recursive: true });
    const servers = await this.startMasters();
    const token = readFileSync(join(this.dataDir, "master-1", "admin.token"), "utf8").trim();
    writeConfig(this.configPath, { servers, token });
    this.client = new ApiClient({ servers, token });
    const server = servers.join(",");
    const join_ = await this.client.call<CreateTokenResponse>((s, md, o, cb) => s.cluster.createToken({ ttlSeconds: 3600n, description: "flotilla up" }, md, o, cb));
    await Promise.all(
      this.agentNames().map((name, i) =>
        this.spawnAndWait(name, [
          "agent", "--server", server, "--token", join_.token, "--data", join(this.dataDir, name),
          "--driver", this.o.driver, "--address", `127.0.0.${i + 2}`, "--name", name,
          // The agents share this machine's network: one proxy serves the services' loopback VIPs for all of them.
          ...(i === 0 ? ["--proxy-mode", "userspace", "--dns-listen", "off"] : ["--proxy-mode", "off"]),
        ], /joined/),
      ),
    );
    await this.waitForReadyNodes();
    this.o.say(`${this.o.agents} agent(s) joined with the ${this.o.driver} driver; client config: ${this.configPath}`);
  }

  /**
   * One master: in-memory, on 127.0.0.1. Three or five: a Raft group on 127.0.1.1..N (API on the port, Raft on
   * port+1, etcd's API on port+2), sharing one admin token. Returns the API addresses.
   */
  private async startMasters(): Promise<string[]> {
    if (this.o.masters === 1) {
      const server = `127.0.0.1:${this.o.port}`;
      await this.spawnAndWait("master-1", ["master", "--listen", server, "--data", join(this.dataDir, "master-1"), ...LOCAL_SERVICE_RANGE, ...(this.o.masterArgs ?? [])], /master listening on/);
      this.o.say(`master-1 is serving on ${server}`);
      return [server];
    }
    const names = Array.from({ length: this.o.masters }, (_, i) => `master-${i + 1}`);
    const host = (i: number) => `127.0.1.${i + 1}`;
    const initial = names.map((n, i) => `${n}=${host(i)}:${this.o.port + 1}`).join(",");
    const token = `admin.${randomBytes(24).toString("hex")}`;
    for (const name of names) {
      mkdirSync(join(this.dataDir, name), { recursive: true });
      const tokenFile = join(this.dataDir, name, "admin.token");
      if (!existsSync(tokenFile)) writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    }
    await Promise.all(
      names.map((name, i) =>
        this.spawnAndWait(name, [
          "master", "--name", name, "--listen", `${host(i)}:${this.o.port}`, "--data", join(this.dataDir, name),
          "--initial-cluster", initial, "--etcd-listen", `${host(i)}:${this.o.port + 2}`, ...LOCAL_SERVICE_RANGE, ...(this.o.masterArgs ?? []),
        ], /master listening on/),
      ),
    );
    const servers = names.map((_, i) => `${host(i)}:${this.o.port}`);
    this.o.say(`${names.length} masters are serving on ${servers.join(", ")} (etcd API on port ${this.o.port + 2})`);
    return servers;
  }

  private spawnAndWait(name: string, args: string[], ready: RegExp): Promise<void> {
    const child = spawn(process.execPath, [cliPath(), ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FLOTILLA_LOG_LEVEL: process.env.FLOTILLA_LOG_LEVEL ?? "info" } });
    this.children.push({ name, process: child });
    const logFile = join(this.dataDir, "logs", `${name}.log`);
    const log = createWriteStream(logFile, { flags: "a" });
    child.stderr!.pipe(log);
    return new Promise((resolvePromise, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on("line", (line) => {
        log.write(`${line}\n`);
        if (ready.test(line)) resolvePromise();
      });
      child.once("exit", (code) => reject(new Error(`${name} exited with code ${code} before it was ready; see ${logFile}`)));
    });
  }

  private async waitForReadyNodes(): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const nodes = await this.client!.call<NodeList>((s, md, o, cb) => s.nodes.listNodes({ namespace: "", labelSelector: "", fieldSelector: "" }, md, o, cb));
      const ready = nodes.items.filter((n) => n.status?.conditions.some((c) => c.type === "Ready" && c.status === "True"));
      if (ready.length >= this.o.agents) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error("agents did not become Ready within 60 s; see the logs folder");
  }

  /** Stops every process it started, then removes the pods' containers unless keep was asked for. */
  async stop(): Promise<void> {
    this.client?.close();
    const exits = this.children
      .filter((c) => c.process.exitCode === null && c.process.signalCode === null)
      .map((c) => new Promise<void>((r) => {
        c.process.once("exit", () => r());
        c.process.kill("SIGTERM");
      }));
    await Promise.all(exits);
    if (this.o.keep) return;
    for (const name of this.agentNames()) {
      const runtime = createRuntime(this.o.driver, { nodeName: name, stateDir: join(this.dataDir, name, "process") });
      for (const c of await runtime.list().catch(() => [])) {
        await runtime.stop(c.id, 5);
        await runtime.remove(c.id);
      }
      await runtime.close();
    }
  }
}
