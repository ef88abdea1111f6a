// `flotilla master --init`: a replicated store of one master, which keeps its state across restarts, and whose
// leases expire (deleting their keys) when no keep-alive comes.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { eventually } from "../support/master.js";
import { daemon, requireBuild, type Daemon } from "../support/processes.js";

const ETCD = "127.0.1.41:17982";
const ARGS = (data: string) => ["master", "--init", "--name", "solo", "--raft-listen", "127.0.1.41:17981", "--listen", "127.0.1.41:17980", "--data", data, "--etcd-listen", ETCD];

function etcdctl(...args: string[]) {
  return spawnSync("etcdctl", ["--endpoints", ETCD, "--command-timeout=5s", ...args], { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" } });
}

describe("flotilla master --init", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-init-"));
  let master: Daemon | undefined;
  afterAll(async () => {
    await master?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps its state across a kill -9 and restart, and expires leases without keep-alives", async () => {
    requireBuild();
    const data = join(dir, "solo");
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, "admin.token"), "admin.init-test\n");
    master = await daemon(ARGS(data), /master listening/);
    expect(etcdctl("put", "/durable", "yes").stdout.trim()).toBe("OK");
    await master.kill("SIGKILL");
    master = await daemon(ARGS(data), /master listening/);
    await eventually(() => etcdctl("get", "/durable", "--print-value-only").stdout.trim() === "yes", 20_000, "the value after restart");

    const lease = etcdctl("lease", "grant", "1").stdout.match(/lease ([0-9a-f]+) granted/)![1];
    expect(etcdctl("put", "/ephemeral", "x", "--lease", lease).status).toBe(0);
    expect(etcdctl("get", "/ephemeral", "--print-value-only").stdout.trim()).toBe("x");
    await eventually(() => etcdctl("get", "/ephemeral", "--print-value-only").stdout.trim() === "", 20_000, "the lease to expire");
    expect(etcdctl("lease", "timetolive", lease).stdout).toMatch(/already expired/);
  });
});
