// The etcd3 npm client library against the etcd API served over the in-memory backend.

import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, until, type Harness } from "./harness.js";

describe("etcd3 client library against the etcd API", () => {
  let h: Harness;
  let client: Etcd3;

  beforeAll(async () => {
    h = await startServer();
    client = new Etcd3({ hosts: h.endpoint });
  });
  afterAll(async () => {
    client.close();
    await h.close();
  });

  it("put, get, getAll, delete", async () => {
    await client.put("lib/a").value("1");
    await client.put("lib/b").value("2");
    expect(await client.get("lib/a").string()).toBe("1");
    expect(await client.getAll().prefix("lib/").strings()).toEqual({ "lib/a": "1", "lib/b": "2" });
    const del = await client.delete().key("lib/a");
    expect(del.deleted).toBe("1");
    expect(await client.get("lib/a").string()).toBeNull();
  });

  it("a watcher receives put and delete events", async () => {
    const watcher = await client.watch().prefix("watched/").create();
    const seen: string[] = [];
    watcher.on("put", (kv) => seen.push(`put ${kv.key.toString()}=${kv.value.toString()}`));
    watcher.on("delete", (kv) => seen.push(`delete ${kv.key.toString()}`));
    await client.put("watched/x").value("1");
    await client.delete().key("watched/x");
    expect(await until(() => seen.length >= 2)).toBe(true);
    expect(seen).toEqual(["put watched/x=1", "delete watched/x"]);
    await watcher.cancel();
  });

  it("a lease with keepalive holds its key, and revoking it deletes the key", async () => {
    const lease = client.lease(5);
    let keptAlive = false;
    lease.on("keepaliveSucceeded", () => (keptAlive = true));
    await lease.put("leased/k").value("v");
    expect(await client.get("leased/k").string()).toBe("v");
    const res = await lease.keepaliveOnce();
    expect(res.TTL).toBe("5");
    expect(await until(() => keptAlive)).toBe(true);
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: await lease.grant(), keys: true });
    expect(Number(ttl.grantedTTL)).toBe(5);
    expect(ttl.keys.map((k) => k.toString())).toEqual(["leased/k"]);
    await lease.revoke();
    expect(await client.get("leased/k").string()).toBeNull();
  });

  it("a txn: if(...).then(...).else(...)", async () => {
    await client.put("tx/k").value("a");
    const ok = await client.if("tx/k", "Value", "==", "a").then(client.put("tx/k").value("b")).else(client.put("tx/k").value("c")).commit();
    expect(ok.succeeded).toBe(true);
    expect(await client.get("tx/k").string()).toBe("b");
    const no = await client.if("tx/k", "Value", "==", "a").then(client.put("tx/k").value("x")).else(client.get("tx/k")).commit();
    expect(no.succeeded).toBe(false);
    expect(no.responses[0].response_range?.kvs[0].value.toString()).toBe("b");
  });

  it("errors carry etcd's messages: a compacted read, an unknown lease", async () => {
    await client.put("c/k").value("1");
    const old = h.backend.currentRevision();
    await client.put("c/k").value("2");
    await h.backend.compact({ revision: h.backend.currentRevision() });
    await expect(client.get("c/k").revision(old).string()).rejects.toThrow("etcdserver: mvcc: required revision has been compacted");
    await expect(client.lease(5, { autoKeepAlive: false }).grant().then(() => client.leaseClient.leaseRevoke({ ID: "999999" }))).rejects.toThrow(
      "etcdserver: requested lease not found",
    );
  });
});
