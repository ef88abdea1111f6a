// A master whose disk fills up: a real tmpfs of a few MiB holds its data directory, and real writes through etcdctl
// fill it. The master must refuse writes with an error that names the cause, never acknowledge a write it did not
// persist, keep answering (serializable reads, the error) instead of crashing, and come back with every
// acknowledged write once there is room again.
//
// Needs root (mount) and etcdctl: skipped otherwise, but under CI=true it fails loudly instead.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { eventually } from "../support/master.js";
import { daemon, requireBuild, type Daemon } from "../support/processes.js";

const ETCDCTL = "/usr/bin/etcdctl";
const ETCD = "127.0.1.43:17992";
const ARGS = (data: string) => ["master", "--init", "--name", "full", "--raft-listen", "127.0.1.43:17991", "--listen", "127.0.1.43:17990", "--data", data, "--etcd-listen", ETCD];
const inCi = process.env.CI === "true";
const isRoot = process.getuid?.() === 0;
const VALUE_BYTES = 200 * 1024;

function etcdctl(args: string[], input?: string) {
  const r = spawnSync(ETCDCTL, ["--endpoints", ETCD, "--command-timeout=10s", ...args], { encoding: "utf8", input, env: { ...process.env, ETCDCTL_API: "3" } });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}`.trim(), stdout: r.stdout.trim() };
}

function run(cmd: string, ...args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.stdout}`);
}

/** A distinct value per key, so a read-back proves the right bytes survived. */
const valueOf = (i: number) => `${i}:`.padEnd(VALUE_BYTES, String.fromCharCode(97 + (i % 26)));

describe.skipIf(!(isRoot && existsSync(ETCDCTL)) && !inCi)("a master whose disk is full", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-disk-full-"));
  const disk = join(dir, "disk");
  let mounted = false;
  let master: Daemon | undefined;
  afterAll(async () => {
    await master?.kill("SIGKILL");
    if (mounted) spawnSync("umount", [disk]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses writes with the cause, acknowledges only what it persisted, and recovers every acknowledged write", async () => {
    requireBuild();
    if (!isRoot) throw new Error("this test mounts a tmpfs: run it as root (CI does)");
    if (!existsSync(ETCDCTL)) throw new Error(`${ETCDCTL} is missing: apt-get install etcd-client`);
    mkdirSync(disk);
    run("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", disk);
    mounted = true;
    const data = join(disk, "master");
    mkdirSync(data);
    writeFileSync(join(data, "admin.token"), "admin.disk-full-test\n");
    master = await daemon(ARGS(data), /master listening/);
    expect(etcdctl(["put", "/before", "fits"]).out).toBe("OK");

    // Leave about 1.5 MiB free: a handful of 200 KiB writes fit, then the log cannot grow.
    const filler = join(disk, "filler");
    const free = Number(spawnSync("df", ["--output=avail", "-B1", disk], { encoding: "utf8" }).stdout.split("\n")[1]);
    run("fallocate", "-l", String(free - 1.5 * 1024 * 1024), filler);

    const acknowledged: number[] = [];
    let refusal = "";
    for (let i = 0; i < 40 && !refusal; i++) {
      const put = etcdctl(["put", `/k/${i}`], valueOf(i));
      if (put.code === 0 && put.out === "OK") acknowledged.push(i);
      else refusal = put.out;
    }
    expect(acknowledged.length).toBeGreaterThan(0);
    // The cause, in etcd's error format, from the first refused write on.
    expect(refusal).toMatch(/etcdserver: the Raft log could not be persisted \(.*no space left on device.*\)/i);
    expect(refusal).toMatch(/serves no more writes/);
    // It stays refused, with the same cause, at once rather than after a timeout; the process keeps running.
    expect(etcdctl(["put", "/after", "x"]).out).toMatch(/could not be persisted.*no space left on device/i);
    expect(etcdctl(["get", "/before"]).out).toMatch(/could not be persisted/); // a linearizable read needs Raft too
    expect(etcdctl(["get", "/before", "--consistency=s", "--print-value-only"]).stdout).toBe("fits");
    expect(master.process.exitCode).toBeNull();
    const logged = () => master!.output.some((l) => /"level":50.*could not be persisted.*no space left on device/i.test(l));
    await eventually(logged, 10_000, "the master to log the cause"); // its output is read while the test awaits

    // Room again: restart on the same data directory (the torn tail of the log is cut on open).
    await master.kill("SIGKILL");
    rmSync(filler);
    master = await daemon(ARGS(data), /master listening/);
    await eventually(() => etcdctl(["get", "/before", "--print-value-only"]).stdout === "fits", 20_000, "the restarted master to serve");
    for (const i of acknowledged) expect(etcdctl(["get", `/k/${i}`, "--print-value-only"]).stdout).toBe(valueOf(i));
    expect(etcdctl(["put", "/after", "room again"]).out).toBe("OK");
    expect(etcdctl(["get", "/after", "--print-value-only"]).stdout).toBe("room again");
  });
});
