// The README's first command and `flotilla up`, run as a user runs them.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ProcessRuntime } from "../../src/agent/runtime/process.js";
import { requireDocker } from "../support/docker.js";
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
