// The real etcdctl (Debian's etcd-client 3.4, ETCDCTL_API=3) against the etcd API served over the in-memory backend.

import { existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { etcdctl, ETCDCTL, spawnEtcdctl, startServer, until, type Harness } from "./harness.js";

describe.skipIf(!existsSync(ETCDCTL))("etcdctl against the etcd API", () => {
  let h: Harness;
  const ctl = (args: string[], stdin?: string) => etcdctl(h.endpoint, args, stdin);

  beforeAll(async () => {
    h = await startServer();
  });
  afterAll(async () => {
    await h.close();
  });

  it("put, get, get --prefix, get -w json, del", async () => {
    expect((await ctl(["put", "/app/a", "1"])).stdout).toBe("OK\n");
    expect((await ctl(["put", "/app/b", "2"])).stdout).toBe("OK\n");
    expect((await ctl(["get", "/app/a"])).stdout).toBe("/app/a\n1\n");
    expect((await ctl(["get", "/app/", "--prefix"])).stdout).toBe("/app/a\n1\n/app/b\n2\n");
    const json = JSON.parse((await ctl(["get", "/app/b", "-w", "json"])).stdout) as {
      header: { revision: number };
      kvs: { key: string; value: string; create_revision: number; mod_revision: number; version: number }[];
      count: number;
    };
    const rev = h.backend.currentRevision();
    expect(json.header.revision).toBe(rev);
    expect(json.count).toBe(1);
    expect(Buffer.from(json.kvs[0].key, "base64").toString()).toBe("/app/b");
    expect(json.kvs[0]).toMatchObject({ create_revision: rev, mod_revision: rev, version: 1 });
    expect((await ctl(["del", "/app/", "--prefix"])).stdout).toBe("2\n");
    expect((await ctl(["get", "/app/", "--prefix"])).stdout).toBe("");
  });

  it("get --rev reads history", async () => {
    await ctl(["put", "hist", "old"]);
    const rev = h.backend.currentRevision();
    await ctl(["put", "hist", "new"]);
    expect((await ctl(["get", "hist", "--rev", String(rev)])).stdout).toBe("hist\nold\n");
    expect((await ctl(["get", "hist"])).stdout).toBe("hist\nnew\n");
  });

  it("txn (interactive, from stdin): compares, success and failure ops", async () => {
    await ctl(["put", "txkey", "v1"]);
    const ok = await ctl(["txn"], 'value("txkey") = "v1"\n\nput txkey v2\nput other yes\n\nput txkey failed\n\n');
    expect(ok.stdout).toBe("SUCCESS\n\nOK\n\nOK\n");
    const failed = await ctl(["txn"], 'value("txkey") = "v1"\n\nput txkey v3\n\nget txkey\n\n');
    expect(failed.stdout).toBe("FAILURE\n\ntxkey\nv2\n");
    expect((await ctl(["get", "other"])).stdout).toBe("other\nyes\n");
  });

  it("watch --prefix prints events as keys change", async () => {
    const w = spawnEtcdctl(h.endpoint, ["watch", "/w/", "--prefix"]);
    try {
      // The watch is in place once a put made after it shows up; retry the put until then.
      const seen = await until(async () => {
        await ctl(["put", "/w/probe", "x"]);
        return w.output().includes("/w/probe");
      }, 50, 200);
      expect(seen).toBe(true);
      await ctl(["put", "/w/k1", "hello"]);
      await ctl(["del", "/w/k1"]);
      expect(await until(() => w.output().includes("DELETE\n/w/k1"))).toBe(true);
      expect(w.output()).toContain("PUT\n/w/k1\nhello\n");
    } finally {
      w.child.kill();
    }
  });

  it("lease grant, keep-alive, revoke deletes attached keys", async () => {
    const grant = await ctl(["lease", "grant", "30"]);
    const id = /lease ([0-9a-f]+) granted with TTL\(30s\)/.exec(grant.stdout)?.[1];
    expect(id, grant.stdout + grant.stderr).toBeDefined();
    expect((await ctl(["put", "leased", "v", "--lease", String(id)])).stdout).toBe("OK\n");
    const ka = spawnEtcdctl(h.endpoint, ["lease", "keep-alive", String(id)]);
    try {
      expect(await until(() => ka.output().includes(`lease ${id} keepalived with TTL(30)`))).toBe(true);
    } finally {
      ka.child.kill();
    }
    const ttl = await ctl(["lease", "timetolive", String(id), "--keys"]);
    expect(ttl.stdout).toContain("attached keys([leased])");
    expect((await ctl(["lease", "list"])).stdout).toContain(String(id));
    expect((await ctl(["lease", "revoke", String(id)])).stdout).toContain("revoked");
    expect((await ctl(["get", "leased"])).stdout).toBe("");
  });

  it("member list and endpoint status -w json", async () => {
    const members = await ctl(["member", "list"]);
    expect(members.stdout).toMatch(/^[0-9a-f]+, started, flotilla-memory, /);
    const status = JSON.parse((await ctl(["endpoint", "status", "-w", "json"])).stdout) as {
      Endpoint: string;
      Status: { header: { revision: number }; version: string; raftTerm: number; leader: number };
    }[];
    expect(status[0].Endpoint).toBe(h.endpoint);
    expect(status[0].Status.version).toBe("3.4.0");
    expect(status[0].Status.header.revision).toBe(h.backend.currentRevision());
  });

  it("snapshot save writes a non-empty file", async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), "etcd-snap-")), "snap.db");
    const r = await ctl(["snapshot", "save", file]);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(file).size).toBeGreaterThan(32);
  });

  it("compaction, then get --rev of a compacted revision fails with etcd's message", async () => {
    await ctl(["put", "comp", "1"]);
    const old = h.backend.currentRevision();
    await ctl(["put", "comp", "2"]);
    const now = h.backend.currentRevision();
    expect((await ctl(["compaction", String(now)])).stdout).toBe(`compacted revision ${now}\n`);
    const r = await ctl(["get", "comp", "--rev", String(old)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Error: etcdserver: mvcc: required revision has been compacted");
    expect((await ctl(["get", "comp"])).stdout).toBe("comp\n2\n");
  });
});
