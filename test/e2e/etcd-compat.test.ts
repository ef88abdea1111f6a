// The real etcdctl (Debian's etcd-client 3.4, ETCDCTL_API=3) against three Flotilla masters run as processes, each
// serving etcd's v3 API (--etcd-listen) over the Raft-replicated store: the subset documented in docs/etcd-compat.md,
// with etcd's output and error messages. Writes go through one master and are read or watched through another; the
// last case kills two masters and checks that the survivor refuses writes and linearizable reads (never a stale
// read) while serializable reads still work, then restarts them.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { daemon, requireBuild, type Daemon } from "../support/processes.js";

const ETCDCTL = "/usr/bin/etcdctl";
const MASTERS = [1, 2, 3].map((i) => ({ name: `m${i}`, api: `127.0.3.${i}:19100`, raft: `127.0.3.${i}:19101`, etcd: `127.0.3.${i}:19102` }));
type MasterSpec = (typeof MASTERS)[number];
const [M1, M2, M3] = MASTERS;
const INITIAL = MASTERS.map((m) => `${m.name}=${m.raft}`).join(",");
const TOKEN = "admin.etcd-compat-test-token";
/** etcd's default --max-request-bytes (1.5 MiB). */
const MAX_REQUEST_BYTES = 1_572_864;

interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs etcdctl to completion against `endpoints`, feeding `stdin` when given; bounded by a kill timer. */
function etcdctl(endpoints: string | string[], args: string[], opts: { stdin?: string | Buffer; commandTimeout?: string } = {}): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = spawn(
      ETCDCTL,
      ["--endpoints", ([] as string[]).concat(endpoints).join(","), "--dial-timeout", "5s", "--command-timeout", opts.commandTimeout ?? "10s", ...args],
      { env: { ...process.env, ETCDCTL_API: "3" }, stdio: ["pipe", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdin.on("error", () => undefined); // etcdctl may exit before reading all of stdin
    child.stdin.end(opts.stdin ?? "");
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
  });
}

/** A long-running etcdctl (watch, lease keep-alive) whose stdout and stderr are collected until it is killed. */
interface Running {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}
const running = new Set<Running>();

function spawnEtcdctl(endpoint: string, args: string[]): Running {
  const child = spawn(ETCDCTL, ["--endpoints", endpoint, ...args], { env: { ...process.env, ETCDCTL_API: "3" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const r: Running = {
    child,
    output: () => out,
    async stop() {
      running.delete(r);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
  running.add(r);
  return r;
}

/** Polls `check` until it returns something other than undefined/false, at most `tries` times; throws with `what`. */
async function poll<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, tries = 100, intervalMs = 200): Promise<T> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`gave up waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

/** JSON.parse, with integers too large for a double (etcd's uint64 member and cluster ids) kept as strings. */
function parseJson<T>(text: string): T {
  return JSON.parse(text.replace(/([:[,]\s*)(\d{16,})(?=\s*[,}\]])/g, '$1"$2"')) as T;
}

interface Header {
  cluster_id: string;
  member_id: string;
  revision: number;
  raft_term: number;
}
interface JsonKv {
  key: string;
  value?: string;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease?: number;
}
interface EndpointStatus {
  Endpoint: string;
  Status: { header: Header; version: string; leader: string; raftTerm: number; raftIndex: number };
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** `put -w json` through `endpoint`: the revision the write created. */
async function putRev(endpoint: string, key: string, value: string): Promise<number> {
  const r = await etcdctl(endpoint, ["put", key, value, "-w", "json"]);
  expect(r.code, r.stderr).toBe(0);
  return parseJson<{ header: Header }>(r.stdout).header.revision;
}

describe.skipIf(!existsSync(ETCDCTL))("etcdctl 3.4 against three Flotilla masters", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-etcd-compat-"));
  const procs = new Map<string, Daemon>();

  const start = async (m: MasterSpec): Promise<void> => {
    const data = join(dir, m.name);
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, "admin.token"), `${TOKEN}\n`);
    procs.set(m.name, await daemon(["master", "--name", m.name, "--listen", m.api, "--data", data, "--initial-cluster", INITIAL, "--etcd-listen", m.etcd], /master listening/));
  };

  /** `endpoint status` of `masters`, once every one answers and they agree on one leader among them. */
  const settled = (masters: MasterSpec[] = MASTERS): Promise<EndpointStatus[]> =>
    poll("the masters to agree on a leader", async () => {
      const r = await etcdctl(masters.map((m) => m.etcd), ["endpoint", "status", "-w", "json"], { commandTimeout: "3s" });
      if (r.code !== 0) return undefined;
      const statuses = parseJson<EndpointStatus[]>(r.stdout);
      const leaders = new Set(statuses.map((s) => String(s.Status.leader)));
      const ok = statuses.length === masters.length && leaders.size === 1 && !leaders.has("0");
      return ok ? statuses : undefined;
    }, 150);

  const leaderOf = (statuses: EndpointStatus[]): MasterSpec => {
    const lead = statuses.find((s) => String(s.Status.header.member_id) === String(s.Status.leader))!;
    return MASTERS.find((m) => m.etcd === lead.Endpoint)!;
  };

  beforeAll(async () => {
    requireBuild();
    await Promise.all(MASTERS.map((m) => start(m)));
    await settled();
  });
  afterAll(async () => {
    for (const r of [...running]) await r.stop();
    for (const p of procs.values()) await p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("put", async () => {
    const r = await etcdctl(M1.etcd, ["put", "/compat/put", "hello"]);
    expect(r).toMatchObject({ code: 0, stdout: "OK\n" });
    // --prev-kv prints the previous pair after OK.
    const again = await etcdctl(M2.etcd, ["put", "/compat/put", "world", "--prev-kv"]);
    expect(again).toMatchObject({ code: 0, stdout: "OK\n/compat/put\nhello\n" });
  });

  it("get: single key, --prefix, --rev of an older revision, -w json with header and key revisions", async () => {
    const created = await putRev(M1.etcd, "/compat/get/a", "1");
    const modified = await putRev(M1.etcd, "/compat/get/a", "2");
    expect(modified).toBeGreaterThan(created);
    await putRev(M1.etcd, "/compat/get/b", "3");

    expect(await etcdctl(M2.etcd, ["get", "/compat/get/a"])).toMatchObject({ code: 0, stdout: "/compat/get/a\n2\n" });
    expect(await etcdctl(M3.etcd, ["get", "/compat/get/", "--prefix"])).toMatchObject({ code: 0, stdout: "/compat/get/a\n2\n/compat/get/b\n3\n" });
    expect(await etcdctl(M2.etcd, ["get", "/compat/get/a", "--rev", String(created)])).toMatchObject({ code: 0, stdout: "/compat/get/a\n1\n" });
    expect(await etcdctl(M3.etcd, ["get", "/compat/get/", "--prefix", "--keys-only"])).toMatchObject({ stdout: "/compat/get/a\n\n/compat/get/b\n\n" });

    const r = await etcdctl(M3.etcd, ["get", "/compat/get/a", "-w", "json"]);
    expect(r.code, r.stderr).toBe(0);
    const json = parseJson<{ header: Header; kvs: JsonKv[]; count: number }>(r.stdout);
    expect(json.header.revision).toBeGreaterThanOrEqual(modified + 1);
    expect(json.header.raft_term).toBeGreaterThan(0);
    expect(json.count).toBe(1);
    expect(json.kvs).toHaveLength(1);
    expect(json.kvs[0]).toMatchObject({ key: b64("/compat/get/a"), value: b64("2"), create_revision: created, mod_revision: modified, version: 2 });
  });

  it("del: a single key, and --prefix with the deleted count", async () => {
    for (const k of ["x", "y", "z"]) await putRev(M1.etcd, `/compat/del/${k}`, k);
    expect(await etcdctl(M2.etcd, ["del", "/compat/del/x"])).toMatchObject({ code: 0, stdout: "1\n" });
    expect(await etcdctl(M2.etcd, ["del", "/compat/del/x"])).toMatchObject({ code: 0, stdout: "0\n" });
    expect(await etcdctl(M3.etcd, ["del", "/compat/del/", "--prefix"])).toMatchObject({ code: 0, stdout: "2\n" });
    expect(await etcdctl(M1.etcd, ["get", "/compat/del/", "--prefix"])).toMatchObject({ code: 0, stdout: "" });
  });

  it("txn (interactive, from stdin): a compare that holds runs the success ops, one that fails the failure ops", async () => {
    await putRev(M1.etcd, "/compat/txn/k", "v1");
    const ok = await etcdctl(M2.etcd, ["txn"], {
      stdin: 'value("/compat/txn/k") = "v1"\nversion("/compat/txn/k") = "1"\n\nput /compat/txn/k v2\nput /compat/txn/ok yes\n\nput /compat/txn/failed yes\n\n',
    });
    expect(ok).toMatchObject({ code: 0, stdout: "SUCCESS\n\nOK\n\nOK\n" });
    const failed = await etcdctl(M3.etcd, ["txn"], {
      stdin: 'value("/compat/txn/k") = "v1"\n\nput /compat/txn/k v3\n\nget /compat/txn/k\nput /compat/txn/failed yes\n\n',
    });
    expect(failed).toMatchObject({ code: 0, stdout: "FAILURE\n\n/compat/txn/k\nv2\n\nOK\n" });
    expect(await etcdctl(M1.etcd, ["get", "/compat/txn/", "--prefix"])).toMatchObject({ stdout: "/compat/txn/failed\nyes\n/compat/txn/k\nv2\n/compat/txn/ok\nyes\n" });
  });

  it("watch --prefix on one master sees puts and deletes made through another", async () => {
    const w = spawnEtcdctl(M1.etcd, ["watch", "/compat/watch/", "--prefix"]);
    try {
      // The watch is in place once a put made after it shows up: probe until then.
      await poll("the watch to be established", async () => {
        await etcdctl(M2.etcd, ["put", "/compat/watch/probe", "p"]);
        return w.output().includes("PUT\n/compat/watch/probe\np\n");
      }, 50);
      await etcdctl(M2.etcd, ["put", "/compat/watch/k1", "hello"]);
      await etcdctl(M3.etcd, ["put", "/compat/watch/k2", "world"]);
      await etcdctl(M2.etcd, ["del", "/compat/watch/k1"]);
      await etcdctl(M3.etcd, ["put", "/compat/other", "not watched"]);
      await poll("the delete event", () => w.output().includes("DELETE\n/compat/watch/k1\n\n"));
      const out = w.output();
      const tail = out.slice(out.indexOf("PUT\n/compat/watch/k1"));
      // etcdctl prints an event's key and value; a delete's value is empty.
      expect(tail).toBe("PUT\n/compat/watch/k1\nhello\nPUT\n/compat/watch/k2\nworld\nDELETE\n/compat/watch/k1\n\n");
      expect(out).not.toContain("/compat/other");
    } finally {
      await w.stop();
    }
  });

  it("watch --rev replays history from an older revision", async () => {
    const r1 = await putRev(M1.etcd, "/compat/hist/a", "1");
    await putRev(M2.etcd, "/compat/hist/b", "2");
    await putRev(M3.etcd, "/compat/hist/a", "3");
    await etcdctl(M1.etcd, ["del", "/compat/hist/b"]);
    const w = spawnEtcdctl(M2.etcd, ["watch", "/compat/hist/", "--prefix", "--rev", String(r1)]);
    try {
      const expected = "PUT\n/compat/hist/a\n1\nPUT\n/compat/hist/b\n2\nPUT\n/compat/hist/a\n3\nDELETE\n/compat/hist/b\n\n";
      await poll("the replayed history", () => w.output().includes(expected), 50);
      expect(w.output()).toBe(expected);
    } finally {
      await w.stop();
    }
  });

  it("lease grant, put --lease, keep-alive, timetolive --keys, revoke deletes the attached keys on every master", async () => {
    const grant = await etcdctl(M1.etcd, ["lease", "grant", "60"]);
    const id = /^lease ([0-9a-f]{16}) granted with TTL\(60s\)\n$/.exec(grant.stdout)?.[1];
    expect(id, grant.stdout + grant.stderr).toBeDefined();
    expect(await etcdctl(M2.etcd, ["put", "/compat/lease/a", "1", "--lease", id!])).toMatchObject({ code: 0, stdout: "OK\n" });
    expect(await etcdctl(M3.etcd, ["put", "/compat/lease/b", "2", "--lease", id!])).toMatchObject({ code: 0, stdout: "OK\n" });

    const ka = spawnEtcdctl(M2.etcd, ["lease", "keep-alive", id!]);
    try {
      await poll("a keep-alive line", () => ka.output().includes(`lease ${id} keepalived with TTL(60)\n`), 50);
    } finally {
      await ka.stop();
    }

    const ttl = await etcdctl(M3.etcd, ["lease", "timetolive", id!, "--keys"]);
    expect(ttl.code, ttl.stderr).toBe(0);
    const m = /^lease ([0-9a-f]{16}) granted with TTL\(60s\), remaining\((\d+)s\), attached keys\(\[(.*)\]\)\n$/.exec(ttl.stdout);
    expect(m, ttl.stdout).not.toBeNull();
    expect(m![1]).toBe(id);
    expect(Number(m![2])).toBeGreaterThan(0);
    expect(Number(m![2])).toBeLessThanOrEqual(60);
    expect(m![3].split(" ").sort()).toEqual(["/compat/lease/a", "/compat/lease/b"]);
    expect((await etcdctl(M1.etcd, ["lease", "list"])).stdout).toContain(id);

    expect(await etcdctl(M3.etcd, ["lease", "revoke", id!])).toMatchObject({ code: 0, stdout: `lease ${id} revoked\n` });
    for (const m of MASTERS) expect(await etcdctl(m.etcd, ["get", "/compat/lease/", "--prefix"]), m.name).toMatchObject({ code: 0, stdout: "" });
    // A revoked lease: time-to-live says so, and revoking again is etcd's "lease not found".
    expect((await etcdctl(M1.etcd, ["lease", "timetolive", id!])).stdout).toBe(`lease ${id} already expired\n`);
    const again = await etcdctl(M1.etcd, ["lease", "revoke", id!]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("etcdserver: requested lease not found");
  });

  it("member list: the three masters by name", async () => {
    const r = await etcdctl(M2.etcd, ["member", "list"]);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.trim().split("\n").map((l) => l.split(", "));
    expect(rows).toHaveLength(3);
    expect(rows.map((c) => c[2]).sort()).toEqual(["m1", "m2", "m3"]);
    for (const c of rows) {
      expect(c[0]).toMatch(/^[0-9a-f]+$/);
      expect(c[1]).toBe("started");
      const m = MASTERS.find((x) => x.name === c[2])!;
      expect(c[3]).toBe(`http://${m.raft}`);
      expect(c[5]).toBe("false");
    }
    expect(new Set(rows.map((c) => c[0])).size).toBe(3);
  });

  it("member promote and remove answer with etcd's errors; member add points to --join", async () => {
    const added = await etcdctl(M1.etcd, ["member", "add", "m4", "--peer-urls=http://127.0.1.99:18401", "--learner"]);
    expect(added.code).not.toBe(0);
    expect(added.stderr).toContain("flotilla master --join");
    const ids = (await etcdctl(M2.etcd, ["member", "list"])).stdout.trim().split("\n").map((l) => l.split(", ")[0]!);
    // Every member is a voter already: promoting one is a no-op that lists the members.
    expect((await etcdctl(M3.etcd, ["member", "promote", ids[0]!])).code).toBe(0);
    const unknown = await etcdctl(M1.etcd, ["member", "remove", "abcdef"]);
    expect(unknown.stderr).toContain("etcdserver: member not found");
    expect((await etcdctl(M1.etcd, ["member", "list"])).stdout.trim().split("\n")).toHaveLength(3);
  });

  it("endpoint status: every endpoint answers, exactly one leader, one raft term", async () => {
    const r = await poll("endpoint status of all three", async () => {
      const s = await etcdctl(MASTERS.map((m) => m.etcd), ["endpoint", "status", "-w", "json"]);
      return s.code === 0 ? s : undefined;
    });
    const statuses = parseJson<EndpointStatus[]>(r.stdout);
    expect(statuses.map((s) => s.Endpoint).sort()).toEqual(MASTERS.map((m) => m.etcd));
    expect(statuses.filter((s) => String(s.Status.header.member_id) === String(s.Status.leader))).toHaveLength(1);
    expect(new Set(statuses.map((s) => String(s.Status.leader))).size).toBe(1);
    expect(new Set(statuses.map((s) => s.Status.raftTerm)).size).toBe(1);
    expect(statuses[0].Status.raftTerm).toBeGreaterThan(0);
    for (const s of statuses) expect(s.Status.version).toBe("3.4.0");
    expect(new Set(statuses.map((s) => String(s.Status.header.cluster_id))).size).toBe(1);
    // The table form prints too.
    const table = await etcdctl(M1.etcd, ["endpoint", "status"]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain(M1.etcd);
  });

  it("snapshot save writes a non-empty file", async () => {
    const file = join(dir, "snapshot.db");
    const r = await etcdctl(M3.etcd, ["snapshot", "save", file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Snapshot saved at ${file}`);
    expect(statSync(file).size).toBeGreaterThan(32);
  });

  it("compaction, then get --rev of a compacted revision fails with etcd's message on every master", async () => {
    const old = await putRev(M1.etcd, "/compat/comp", "1");
    const now = await putRev(M2.etcd, "/compat/comp", "2");
    expect(await etcdctl(M3.etcd, ["compaction", String(now)])).toMatchObject({ code: 0, stdout: `compacted revision ${now}\n` });
    for (const m of MASTERS) {
      const r = await etcdctl(m.etcd, ["get", "/compat/comp", "--rev", String(old)]);
      expect(r.code, m.name).not.toBe(0);
      expect(r.stderr, m.name).toContain("Error: etcdserver: mvcc: required revision has been compacted");
      expect(await etcdctl(m.etcd, ["get", "/compat/comp"])).toMatchObject({ code: 0, stdout: "/compat/comp\n2\n" });
    }
    // A watch from before the compaction point is refused too.
    const w = spawnEtcdctl(M1.etcd, ["watch", "/compat/comp", "--rev", String(old)]);
    try {
      await poll("the compacted watch to end", () => w.child.exitCode !== null || w.output().includes("compacted"), 50);
      expect(w.output()).toContain("required revision has been compacted");
    } finally {
      await w.stop();
    }
  });

  it("a request over etcd's 1.5 MiB limit fails with 'etcdserver: request is too large'", async () => {
    // 1.75 MiB: over etcd's default --max-request-bytes (1.5 MiB), under etcdctl's own 2 MiB send limit (clientv3
    // refuses a message over 2 MiB itself, with "trying to send message larger than max", before any server sees it).
    // The value comes from stdin: an argument that long exceeds the kernel's limit on one argv string.
    const value = Buffer.alloc(MAX_REQUEST_BYTES + 256 * 1024, "x");
    const r = await etcdctl(M1.etcd, ["put", "/compat/too-large"], { stdin: value });
    expect(r.code, `put of ${value.length} bytes: ${r.stdout}${r.stderr}`).not.toBe(0);
    expect(r.stderr).toContain("etcdserver: request is too large");
    expect(await etcdctl(M2.etcd, ["get", "/compat/too-large", "--keys-only"])).toMatchObject({ code: 0, stdout: "" });
    // Just under the limit is accepted.
    const fits = Buffer.alloc(MAX_REQUEST_BYTES - 4096, "y");
    expect(await etcdctl(M1.etcd, ["put", "/compat/fits"], { stdin: fits })).toMatchObject({ code: 0, stdout: "OK\n" });
    expect(await etcdctl(M1.etcd, ["del", "/compat/fits"])).toMatchObject({ code: 0, stdout: "1\n" });
  });

  it("a minority refuses writes and linearizable reads (never stale), serves serializable reads; a restart heals", { timeout: 240_000 }, async () => {
    await putRev(M1.etcd, "/compat/minority", "before");
    // Keep the leader, kill the two followers: the survivor is the member most tempted to answer from its own state.
    const survivor = leaderOf(await settled());
    const killed = MASTERS.filter((m) => m !== survivor);
    // The survivor has applied the write once a linearizable read through it sees it.
    expect(await etcdctl(survivor.etcd, ["get", "/compat/minority", "--print-value-only"])).toMatchObject({ stdout: "before\n" });
    for (const m of killed) await procs.get(m.name)!.kill("SIGKILL");

    const put = await etcdctl(survivor.etcd, ["put", "/compat/minority-write", "x"], { commandTimeout: "8s" });
    expect(put.code, put.stdout).not.toBe(0);
    const noLeader = put.stderr.includes("etcdserver: no leader");
    // The first write may wait out the request timeout before the survivor steps down: etcd's own string for that.
    const leaderTimeout = put.stderr.includes("etcdserver: request timed out");
    expect(noLeader || leaderTimeout, put.stderr).toBe(true);

    // Once the survivor has stepped down (check-quorum), writes fail fast with etcd's "no leader".
    await poll("the survivor to report no leader on a write", async () => {
      const r = await etcdctl(survivor.etcd, ["put", "/compat/minority-write", "x"], { commandTimeout: "8s" });
      expect(r.code).not.toBe(0);
      return r.stderr.includes("etcdserver: no leader");
    }, 10, 500);

    const lin = await etcdctl(survivor.etcd, ["get", "/compat/minority"], { commandTimeout: "5s" });
    expect(lin.code, `linearizable get answered: ${lin.stdout}`).not.toBe(0);
    expect(lin.stdout).toBe("");
    expect(lin.stderr).toMatch(/etcdserver: no leader|context deadline exceeded/);
    const ser = await etcdctl(survivor.etcd, ["get", "/compat/minority", "--consistency=s"]);
    expect(ser).toMatchObject({ code: 0, stdout: "/compat/minority\nbefore\n" });

    await Promise.all(killed.map((m) => start(m)));
    await settled();
    await poll("a write through a restarted master", async () => (await etcdctl(killed[0].etcd, ["put", "/compat/minority", "after"])).code === 0, 50);
    for (const m of MASTERS) {
      const r = await poll(`${m.name} to serve the new value`, async () => {
        const g = await etcdctl(m.etcd, ["get", "/compat/minority", "--print-value-only"]);
        return g.stdout === "after\n" ? g : undefined;
      }, 50);
      expect(r.code).toBe(0);
    }
    const statuses = await settled();
    expect(statuses.filter((s) => String(s.Status.header.member_id) === String(s.Status.leader))).toHaveLength(1);
  });
});
