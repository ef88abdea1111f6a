// Three masters as real processes, replicating the store with Raft: the Flotilla API and etcdctl through any of
// them, kill -9 of the leader during a stream of writes, and a restart that catches up. No acknowledged write may be
// lost, and the control plane must move to the new leader.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient } from "../../src/api/client.js";
import { Deployment, type DeploymentList } from "../../src/gen/flotilla/v1/deployment.js";
import type { PodList } from "../../src/gen/flotilla/v1/pod.js";
import { eventually } from "../support/master.js";
import { cli, daemon, requireBuild, type Daemon } from "../support/processes.js";

const MASTERS = [1, 2, 3].map((i) => ({ name: `m${i}`, api: `127.0.1.${10 + i}:17900`, raft: `127.0.1.${10 + i}:17901`, etcd: `127.0.1.${10 + i}:17902` }));
const INITIAL = MASTERS.map((m) => `${m.name}=${m.raft}`).join(",");
const TOKEN = "admin.ha-test-shared-token";

function etcdctl(endpoints: string[], ...args: string[]) {
  const r = spawnSync("etcdctl", ["--endpoints", endpoints.join(","), "--command-timeout=5s", ...args], {
    encoding: "utf8",
    env: { ...process.env, ETCDCTL_API: "3" },
    timeout: 20_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("highly available masters", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-ha-"));
  const procs = new Map<string, Daemon>();
  const client = new ApiClient({ servers: MASTERS.map((m) => m.api), token: TOKEN, timeoutMs: 8000 });
  const alive = () => MASTERS.filter((m) => procs.get(m.name)?.process.exitCode === null && !procs.get(m.name)?.process.signalCode);

  const start = async (m: (typeof MASTERS)[number]) => {
    const data = join(dir, m.name);
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, "admin.token"), `${TOKEN}\n`);
    procs.set(m.name, await daemon(["master", "--name", m.name, "--listen", m.api, "--data", data, "--initial-cluster", INITIAL, "--etcd-listen", m.etcd, "--heartbeat-interval", "1"], /master listening/));
  };
  const leaderName = () =>
    eventually(() => {
      const r = etcdctl(alive().map((m) => m.etcd), "endpoint", "status", "-w", "json");
      if (r.code !== 0) return undefined;
      const statuses = JSON.parse(r.stdout) as { Endpoint: string; Status: { header: { member_id: number }; leader: number } }[];
      const lead = statuses.find((s) => String(s.Status.header.member_id) === String(s.Status.leader));
      return lead ? MASTERS.find((m) => m.etcd === lead.Endpoint)?.name : undefined;
    }, 30_000, "a leader among the masters");

  beforeAll(async () => {
    requireBuild();
    await Promise.all(MASTERS.map((m) => start(m)));
  });
  afterAll(async () => {
    client.close();
    for (const p of procs.values()) await p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves etcdctl through every master: put on one, get on another, lease, member list, status, snapshot", async () => {
    await leaderName();
    expect(etcdctl([MASTERS[1].etcd], "put", "/demo/a", "1").stdout.trim()).toBe("OK");
    const got = JSON.parse(etcdctl([MASTERS[2].etcd], "get", "/demo/a", "-w", "json").stdout);
    expect(Buffer.from(got.kvs[0].value, "base64").toString()).toBe("1");
    expect(etcdctl([MASTERS[0].etcd], "member", "list").stdout.trim().split("\n")).toHaveLength(3);
    const lease = etcdctl([MASTERS[0].etcd], "lease", "grant", "60").stdout.match(/lease ([0-9a-f]+) granted/)![1];
    expect(etcdctl([MASTERS[1].etcd], "put", "/demo/leased", "x", "--lease", lease).code).toBe(0);
    expect(etcdctl([MASTERS[2].etcd], "lease", "revoke", lease).code).toBe(0);
    expect(etcdctl([MASTERS[0].etcd], "get", "/demo/leased", "--print-value-only").stdout.trim()).toBe("");
    const snapshot = join(dir, "backup.db");
    expect(etcdctl([MASTERS[0].etcd], "snapshot", "save", snapshot).code).toBe(0);
  });

  it("serves the Flotilla API from any master, and runs the controllers on the leader", async () => {
    const web = Deployment.fromJSON({
      metadata: { name: "web" },
      spec: { replicas: 2, selector: { matchLabels: { app: "web" } }, template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "c", command: ["sleep", "60"] }] } } },
    });
    await client.call((s, md, o, cb) => s.deployments.applyDeployment(web, md, o, cb));
    for (const m of MASTERS) {
      const one = new ApiClient({ servers: [m.api], token: TOKEN });
      const list = await one.call<DeploymentList>((s, md, o, cb) => s.deployments.listDeployments({ namespace: "", labelSelector: "", fieldSelector: "" }, md, o, cb));
      expect(list.items.map((d) => d.metadata?.name)).toEqual(["web"]);
      one.close();
    }
    await eventually(async () => {
      const pods = await client.call<PodList>((s, md, o, cb) => s.pods.listPods({ namespace: "default", labelSelector: "app=web", fieldSelector: "" }, md, o, cb));
      return pods.items.length === 2;
    }, 20_000, "the leader's Deployment controller to create 2 pods");
  });

  it("loses no acknowledged write when the leader is killed mid-stream; the survivors keep serving; a restart catches up", async () => {
    const leader = await leaderName();
    const acked: string[] = [];
    for (let i = 0; i < 60; i++) {
      if (i === 20) await procs.get(leader)!.kill("SIGKILL");
      for (let attempt = 0; attempt < 30; attempt++) {
        const r = etcdctl(alive().map((m) => m.etcd), "put", `/stream/${i}`, `v${i}`);
        if (r.code === 0) {
          acked.push(`/stream/${i}`);
          break;
        }
        await new Promise((res) => setTimeout(res, 200));
      }
    }
    expect(acked).toHaveLength(60);
    const newLeader = await leaderName();
    expect(newLeader).not.toBe(leader);
    const keys = etcdctl(alive().map((m) => m.etcd), "get", "/stream/", "--prefix", "--keys-only").stdout.split("\n").filter(Boolean);
    expect(new Set(keys)).toEqual(new Set(acked));
    // The new leader's control plane acts: scaling creates pods.
    await client.call((s, md, o, cb) => s.cluster.scale({ kind: "Deployment", namespace: "default", name: "web", replicas: 4 }, md, o, cb));
    await eventually(async () => {
      const pods = await client.call<PodList>((s, md, o, cb) => s.pods.listPods({ namespace: "default", labelSelector: "app=web", fieldSelector: "" }, md, o, cb));
      return pods.items.length === 4;
    }, 20_000, "the new leader's controller to scale to 4");
    await start(MASTERS.find((m) => m.name === leader)!);
    const restarted = MASTERS.find((m) => m.name === leader)!;
    await eventually(() => etcdctl([restarted.etcd], "get", "/stream/59", "--print-value-only").stdout.trim() === "v59", 30_000, "the restarted master to catch up");
  });

  it("delivers every watch event exactly once and in order through a follower, across a leader change", async () => {
    const leader = await leaderName();
    const follower = MASTERS.find((m) => m.name !== leader && alive().includes(m))!;
    const watch = spawn("etcdctl", ["--endpoints", follower.etcd, "watch", "--prefix", "/w/"], { env: { ...process.env, ETCDCTL_API: "3" } });
    let output = "";
    watch.stdout.on("data", (d) => (output += String(d)));
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < 30; i++) {
      if (i === 10) await procs.get(leader)!.kill("SIGKILL");
      for (let attempt = 0; attempt < 30; attempt++) {
        if (etcdctl(alive().map((m) => m.etcd), "put", `/w/${i}`, `v${i}`).code === 0) break;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const keys = await eventually(() => {
      const seen = output.split("\n").filter((l) => l.startsWith("/w/"));
      return seen.length >= 30 && seen;
    }, 30_000, "30 watch events");
    watch.kill();
    expect(keys).toEqual(Array.from({ length: 30 }, (_, i) => `/w/${i}`));
    await start(MASTERS.find((m) => m.name === leader)!);
  });

  it("lists its members, backs up with snapshot save, restores the backup into a new cluster, and removes a member", async () => {
    const config = join(dir, "flotilla.yaml");
    writeFileSync(config, `servers: [${MASTERS.map((m) => `"${m.api}"`).join(", ")}]\ntoken: ${TOKEN}\n`);
    const listed = cli(config, "members", "list");
    expect(listed.stdout).toMatch(/^NAME\s+ROLE\s+LEADER\s+RAFT ADDRESS/);
    expect(listed.stdout.match(/voter/g)).toHaveLength(3);
    expect(listed.stdout.match(/yes/g)).toHaveLength(1);

    const backup = join(dir, "backup.flotilla");
    expect(cli(config, "snapshot", "save", backup).stdout).toMatch(/snapshot saved to/);
    const restoredDir = join(dir, "r1");
    const restored = { api: "127.0.1.19:17950", raft: "127.0.1.19:17951", etcd: "127.0.1.19:17952" };
    expect(cli(config, "snapshot", "restore", backup, "--data", restoredDir, "--name", "r1", "--initial-cluster", `r1=${restored.raft}`).code).toBe(0);
    writeFileSync(join(restoredDir, "admin.token"), `${TOKEN}\n`);
    procs.set("r1", await daemon(["master", "--name", "r1", "--listen", restored.api, "--data", restoredDir, "--initial-cluster", `r1=${restored.raft}`, "--etcd-listen", restored.etcd], /master listening/));
    await eventually(() => etcdctl([restored.etcd], "get", "/stream/59", "--print-value-only").stdout.trim() === "v59", 30_000, "the restored store");
    const one = new ApiClient({ servers: [restored.api], token: TOKEN });
    const web = await one.call<Deployment>((s, md, o, cb) => s.deployments.getDeployment({ namespace: "default", name: "web" }, md, o, cb));
    expect(web.spec?.replicas).toBe(4);
    one.close();

    expect(cli(config, "members", "remove", "m3").stdout.trim()).toBe("member m3 removed");
    await eventually(() => (cli(config, "members", "list").stdout.match(/voter/g) ?? []).length === 2, 20_000, "2 members");
  });

  it("adds a master with --join: a learner first, promoted once it has caught up, serving everything", async () => {
    const config = join(dir, "flotilla.yaml");
    const m4 = { api: "127.0.1.14:17900", raft: "127.0.1.14:17901", etcd: "127.0.1.14:17902" };
    const data = join(dir, "m4");
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, "admin.token"), `${TOKEN}\n`);
    procs.set("m4", await daemon(["master", "--name", "m4", "--join", MASTERS[0].api, "--raft-listen", m4.raft, "--listen", m4.api, "--data", data, "--etcd-listen", m4.etcd], /master listening/));
    await eventually(() => /m4\s+voter/.test(cli(config, "members", "list").stdout), 30_000, "m4 promoted to voter");
    await eventually(() => etcdctl([m4.etcd], "get", "/stream/59", "--print-value-only").stdout.trim() === "v59", 30_000, "m4 to serve the data");
    expect(etcdctl([m4.etcd], "put", "/joined", "yes").stdout.trim()).toBe("OK");
    expect(etcdctl([MASTERS[0].etcd], "get", "/joined", "--print-value-only").stdout.trim()).toBe("yes");
  });

  it("keeps its state and revision when every master restarts, and watches resume from their revision", async () => {
    const group = ["m1", "m2", "m4"];
    const endpoints = () => [...MASTERS.map((m) => m.etcd), "127.0.1.14:17902"].filter((_, i) => i !== 2);
    const before = JSON.parse(etcdctl(endpoints(), "get", "/joined", "-w", "json").stdout);
    const revision = Number(before.header.revision);
    const commands = new Map(group.map((name) => [name, procs.get(name)!.process.spawnargs.slice(1)]));
    for (const name of group) await procs.get(name)!.kill("SIGKILL");
    // Together: a master waits for a quorum before it serves, so one at a time would never finish.
    const restarted = await Promise.all(group.map((name) => daemon(commands.get(name)!.slice(1), /master listening/)));
    group.forEach((name, i) => procs.set(name, restarted[i]));
    const after = await eventually(() => {
      const r = etcdctl(endpoints(), "get", "/joined", "-w", "json");
      return r.code === 0 && JSON.parse(r.stdout);
    }, 30_000, "the restarted group to serve");
    expect(Buffer.from(after.kvs[0].value, "base64").toString()).toBe("yes");
    expect(Number(after.header.revision)).toBeGreaterThanOrEqual(revision);
    const replay = spawn("etcdctl", ["--endpoints", "127.0.1.14:17902", "watch", "--prefix", "/stream/", "--rev", "1"], { env: { ...process.env, ETCDCTL_API: "3" } });
    let output = "";
    replay.stdout.on("data", (d) => (output += String(d)));
    await eventually(() => output.includes("/stream/59"), 20_000, "the watch to replay from revision 1");
    replay.kill();
  });
});
