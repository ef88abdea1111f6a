// etcd's v3 API on the master's own client port, with etcd's authentication protocol in front: Debian's etcdctl
// logs in as root with the admin token (`--user root:TOKEN`) and then works unchanged; without a login, or with a
// wrong password or token, it gets etcd's own errors and nothing is read or written.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { daemon, requireBuild, type Daemon } from "../support/processes.js";

const CLIENT = "127.0.1.45:17960";
const TOKEN = "admin.client-port-test-token";
const ARGS = (data: string) => ["master", "--init", "--name", "cp", "--raft-listen", "127.0.1.45:17961", "--listen", CLIENT, "--data", data];

function etcdctl(...args: string[]) {
  const r = spawnSync("etcdctl", ["--endpoints", CLIENT, "--command-timeout=5s", ...args], { encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" } });
  return { code: r.status ?? -1, stdout: r.stdout.trim(), out: `${r.stdout}${r.stderr}` };
}

describe("etcd's API on the master's client port", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-client-port-"));
  let master: Daemon | undefined;
  afterAll(async () => {
    await master?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves etcdctl logged in as root with the admin token, and refuses everyone else with etcd's errors", async () => {
    requireBuild();
    const data = join(dir, "cp");
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, "admin.token"), `${TOKEN}\n`);
    master = await daemon(ARGS(data), /master listening/);

    const root = `--user=root:${TOKEN}`;
    expect(etcdctl(root, "put", "/via-client-port", "v1").stdout).toBe("OK");
    expect(etcdctl(root, "get", "/via-client-port", "--print-value-only").stdout).toBe("v1");
    expect(etcdctl(root, "endpoint", "status", "-w", "json").stdout).toMatch(/"leader"/);
    expect(etcdctl(root, "member", "list").stdout).toMatch(/cp/);
    // The Flotilla objects are in the same store, under /registry.
    expect(etcdctl(root, "get", "/registry/", "--prefix", "--keys-only").code).toBe(0);

    // Streams carry the token too: a watch replays history, a lease keep-alive renews.
    const watch = spawnSync("etcdctl", ["--endpoints", CLIENT, root, "watch", "--rev", "1", "/via-client-port"], {
      encoding: "utf8",
      timeout: 3000, // a watch never ends by itself: its replay is printed by then
      env: { ...process.env, ETCDCTL_API: "3" },
    });
    expect(watch.stdout).toMatch(/PUT\n\/via-client-port\nv1/);
    const lease = etcdctl(root, "lease", "grant", "60").stdout.match(/lease ([0-9a-f]+) granted/)?.[1];
    expect(lease).toBeDefined();
    expect(etcdctl(root, "lease", "keep-alive", "--once", lease!).stdout).toMatch(/keepalived with TTL/);

    const anonymous = etcdctl("get", "/via-client-port");
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.out).toMatch(/etcdserver: user name is empty/);
    const anonymousWatch = spawnSync("etcdctl", ["--endpoints", CLIENT, "watch", "--rev", "1", "/via-client-port"], {
      encoding: "utf8",
      timeout: 3000,
      env: { ...process.env, ETCDCTL_API: "3" },
    });
    expect(anonymousWatch.stdout).not.toMatch(/v1/);
    expect(`${anonymousWatch.stdout}${anonymousWatch.stderr}`).toMatch(/user name is empty/);
    const wrongPassword = etcdctl("--user=root:admin.wrong", "get", "/via-client-port");
    expect(wrongPassword.code).not.toBe(0);
    expect(wrongPassword.out).toMatch(/etcdserver: authentication failed, invalid user ID or password/);
    const wrongUser = etcdctl(`--user=alice:${TOKEN}`, "put", "/via-client-port", "v2");
    expect(wrongUser.out).toMatch(/authentication failed/);
    expect(etcdctl(root, "get", "/via-client-port", "--print-value-only").stdout).toBe("v1");
  });
});
