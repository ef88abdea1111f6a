// The README's first command and `flotilla up`, run as a user runs them.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ProcessRuntime } from "../../src/agent/runtime/process.js";
import { requireDocker } from "../support/docker.js";
import { eventually } from "../support/master.js";
import { CLI, cli, daemon, requireBuild } from "../support/processes.js";

const docker = await requireDocker();
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "flotilla-up-"));
  dirs.push(d);
  return d;
};

function demo(...args: string[]) {
  requireBuild();
  return spawnSync(process.execPath, [CLI, "demo", "--exit", ...args], { encoding: "utf8", timeout: 180_000 });
}

describe("npm start (flotilla demo)", () => {
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it("serves hello with 3 replicas under the process driver, then cleans up", () => {
    const r = demo("--driver", "process", "--data", tempDir(), "--port", "17501");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("deployment/hello created");
    expect(r.stdout).toContain("hello is serving:");
    expect(r.stdout.match(/-> hello from hello-[a-z0-9-]+ on agent-[12]/g)).toHaveLength(3);
  });

  it.skipIf(!docker)("chooses the Docker driver when a daemon answers, and says so", () => {
    const r = demo("--data", tempDir(), "--port", "17502");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("driver: docker");
    expect(r.stdout.match(/-> hello from hello-[a-z0-9-]+ on agent-[12]/g)).toHaveLength(3);
  });
});

describe("flotilla up", () => {
  it("brings up a cluster, writes the client config, and stops everything on Ctrl-C", async () => {
    requireBuild();
    const data = tempDir();
    const up = await daemon(["up", "--agents", "1", "--driver", "process", "--data", data, "--port", "17503"], /Press Ctrl-C/);
    const config = join(data, "flotilla.yaml");
    expect(existsSync(config)).toBe(true);
    expect(cli(config, "get", "nodes").stdout).toMatch(/agent-1\s+Ready/);
    expect(cli(config, "apply", "-f", "examples/hello.yaml").stdout.trim()).toBe("deployment/hello created");
    const runtime = new ProcessRuntime({ nodeName: "agent-1", stateDir: join(data, "agent-1", "process") });
    const deadline = Date.now() + 30_000;
    while ((await runtime.list()).filter((c) => c.state === "running").length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect((await runtime.list()).filter((c) => c.state === "running")).toHaveLength(3);
    expect(await up.kill("SIGINT")).toBe(0);
    expect(await runtime.list()).toEqual([]);
    expect(cli(config, "get", "nodes").stderr).toMatch(/^error: UNAVAILABLE/);
  });
});

describe("flotilla up --masters 3", () => {
  it("runs a Raft group of masters that survives the loss of its leader: the CLI and the agent fail over", async () => {
    requireBuild();
    const data = tempDir();
    const port = 17600;
    const up = await daemon(["up", "--masters", "3", "--agents", "1", "--driver", "process", "--data", data, "--port", String(port)], /Press Ctrl-C/);
    const config = join(data, "flotilla.yaml");
    expect(readFileSync(config, "utf8")).toContain(`127.0.1.3:${port}`);
    expect(cli(config, "apply", "-f", "examples/hello.yaml").code).toBe(0);
    const running = () => (cli(config, "get", "pods").stdout.match(/Running/g) ?? []).length;
    await eventually(() => running() === 3, 60_000, "3 running pods");
    const status = spawnSync("etcdctl", ["--endpoints", [1, 2, 3].map((i) => `127.0.1.${i}:${port + 2}`).join(","), "endpoint", "status", "-w", "json"], {
      encoding: "utf8",
      env: { ...process.env, ETCDCTL_API: "3" },
    });
    const statuses = JSON.parse(status.stdout) as { Endpoint: string; Status: { header: { member_id: number }; leader: number } }[];
    const leader = statuses.find((s) => String(s.Status.header.member_id) === String(s.Status.leader))!;
    const leaderIndex = Number(leader.Endpoint.split(":")[0].split(".")[3]);
    expect(spawnSync("pkill", ["-9", "-f", "--", `--data ${join(data, `master-${leaderIndex}`)} `]).status).toBe(0);
    const probe = () => spawnSync("etcdctl", ["--endpoints", leader.Endpoint, "--dial-timeout=1s", "endpoint", "health"], { env: { ...process.env, ETCDCTL_API: "3" } });
    await eventually(() => probe().status !== 0, 10_000, "the killed leader to be gone");
    await eventually(() => cli(config, "scale", "deployment/hello", "--replicas", "4").code === 0, 30_000, "scaling through the surviving masters");
    await eventually(() => running() === 4, 60_000, "4 running pods under the new leader");
    await new Promise((r) => setTimeout(r, 3000));
    expect(cli(config, "get", "nodes").stdout).toMatch(/agent-1\s+Ready/);
    expect(await up.kill("SIGINT")).toBe(0);
  });
});
