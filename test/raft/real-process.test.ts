// Three Raft nodes as separate OS processes over gRPC on 127.0.0.x, with real files and fsync: kill -9 the leader
// during a stream of writes, restart it, and check that no acknowledged write is lost and that the logs match;
// then tear a follower's log tail and see it recovered.
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../support/master.js";

const KV_NODE = join(process.cwd(), "dist", "src", "raft", "tools", "kv-node.js");
const NODES = ["n1", "n2", "n3"].map((id, i) => ({ id, raft: `127.0.0.${31 + i}:17101`, http: `127.0.0.${31 + i}:18101` }));
const PEERS = NODES.map((n) => `${n.id}=${n.raft}`).join(",");

interface Status {
  role: string;
  lead: string;
  term: number;
  commit: number;
  applied: number;
}
interface LogEntry {
  index: number;
  term: number;
  crc: number;
}

describe("Raft nodes as real processes", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-raft-"));
  const procs = new Map<string, ChildProcess>();
  const stdout = new Map<string, string>();

  const start = (id: string) =>
    new Promise<void>((resolve, reject) => {
      const n = NODES.find((x) => x.id === id)!;
      const child = spawn(process.execPath, [KV_NODE, "--id", id, "--raft", n.raft, "--http", n.http, "--peers", PEERS, "--data", join(dir, id), "--snapshot-threshold", "50"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      procs.set(id, child);
      let err = "";
      child.stderr!.on("data", (d) => (err += String(d)));
      stdout.set(id, "");
      child.stdout!.on("data", (d) => {
        stdout.set(id, stdout.get(id) + String(d));
        if (String(d).includes("ready")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`${id} exited with ${code}: ${err}`)));
    });
  const kill9 = async (id: string) => {
    const child = procs.get(id)!;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  };
  const get = async <T>(id: string, path: string): Promise<T> => {
    const n = NODES.find((x) => x.id === id)!;
    const res = await fetch(`http://${n.http}${path}`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`${id} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const propose = async (id: string, key: string, value: string) => {
    const n = NODES.find((x) => x.id === id)!;
    const res = await fetch(`http://${n.http}/propose`, {
      method: "POST",
      body: JSON.stringify({ op: "set", key, value, id: `${key}-${value}` }),
      signal: AbortSignal.timeout(5000),
    });
    return res.ok;
  };
  const leader = () =>
    eventually(async () => {
      for (const n of NODES) {
        if (!procs.get(n.id) || procs.get(n.id)!.exitCode !== null || procs.get(n.id)!.signalCode) continue;
        const s = await get<Status>(n.id, "/status").catch(() => undefined);
        if (s?.role === "leader") return n.id;
      }
      return undefined;
    }, 30_000, "a leader");
  const logsMatch = () =>
    eventually(async () => {
      const logs = await Promise.all(NODES.map((n) => get<LogEntry[]>(n.id, "/log")));
      const statuses = await Promise.all(NODES.map((n) => get<Status>(n.id, "/status")));
      if (new Set(statuses.map((s) => s.applied)).size !== 1) return undefined;
      const byIndex = logs.map((l) => new Map(l.map((e) => [e.index, e])));
      for (const [index, entry] of byIndex[0]) {
        for (const other of byIndex.slice(1)) {
          const e = other.get(index);
          if (e && (e.term !== entry.term || e.crc !== entry.crc)) throw new Error(`logs differ at ${index}`);
        }
      }
      return true;
    }, 60_000, "logs to converge and match");

  beforeAll(async () => {
    if (!existsSync(KV_NODE)) throw new Error(`${KV_NODE} is missing: run 'npm run build' ('npm test' does it)`);
    await Promise.all(NODES.map((n) => start(n.id)));
  });
  afterAll(async () => {
    for (const child of procs.values()) if (child.exitCode === null && !child.signalCode) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("loses no acknowledged write when the leader is killed with SIGKILL mid-stream, and the logs match", async () => {
    const first = await leader();
    const acked = new Map<string, string>();
    let target = 0;
    for (let i = 0; i < 120; i++) {
      if (i === 40) await kill9(first);
      const key = `k${i % 30}`;
      const value = `v${i}`;
      for (let attempt = 0; attempt < 50; attempt++) {
        const id = NODES[target % 3].id;
        const alive = procs.get(id)!.exitCode === null && !procs.get(id)!.signalCode;
        if (alive && (await propose(id, key, value).catch(() => false))) {
          acked.set(key, value);
          break;
        }
        target++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(acked.size).toBe(30);
    await start(first);
    await logsMatch();
    for (const n of NODES) {
      for (const [key, value] of acked) expect((await get<{ value: string }>(n.id, `/read?key=${key}`)).value).toBe(value);
    }
  });

  it("accepts writes on a follower, which forwards them to the leader", async () => {
    const lead = await leader();
    const follower = NODES.find((n) => n.id !== lead)!.id;
    expect(await propose(follower, "via-follower", "ok")).toBe(true);
    expect((await get<{ value: string }>(lead, "/read?key=via-follower")).value).toBe("ok");
  });

  it("recovers a follower whose log tail was torn by a crash", async () => {
    const lead = await leader();
    const follower = NODES.find((n) => n.id !== lead)!.id;
    await kill9(follower);
    const walDir = join(dir, follower, "wal");
    const segments = readdirSync(walDir).filter((f) => f.endsWith(".wal")).sort();
    appendFileSync(join(walDir, segments.at(-1)!), Buffer.from([0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]));
    for (let i = 0; i < 10; i++) expect(await propose(lead, `t${i}`, `w${i}`)).toBe(true);
    await start(follower);
    expect(stdout.get(follower)).toContain(`kv-node ${follower} repaired its log`);
    await logsMatch();
    expect((await get<{ value: string }>(follower, "/read?key=t9")).value).toBe("w9");
  });
});
