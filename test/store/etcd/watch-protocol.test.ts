// The Watch stream at the protocol level (a raw gRPC client): auto ids, created-before-events, one response per
// revision, a compacted start revision (created, then canceled with compact_revision), progress requests and
// progress notifications.

import { credentials, makeClientConstructor, type ClientDuplexStream } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { etcdServices } from "../../../src/store/etcd/proto.js";
import { startServer, until, type Harness } from "./harness.js";

interface WatchRes {
  header: { revision: string };
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  events: { type: string; kv: { key: Buffer; mod_revision: string } }[];
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("Watch stream protocol", () => {
  let h: Harness;
  let stream: ClientDuplexStream<object, WatchRes>;
  const got: WatchRes[] = [];

  beforeAll(async () => {
    h = await startServer();
    const Client = makeClientConstructor(etcdServices().Watch.service, "Watch");
    const client = new Client(h.endpoint, credentials.createInsecure());
    stream = client.Watch() as ClientDuplexStream<object, WatchRes>;
    stream.on("data", (r: WatchRes) => got.push(r));
    stream.on("error", () => undefined);
  });
  afterAll(async () => {
    stream.cancel();
    await h.close();
  });

  const responses = (id: string) => got.filter((r) => r.watch_id === id);

  it("auto ids start at 0; created comes first; events arrive one response per revision", async () => {
    stream.write({ create_request: { key: Buffer.from("p/"), range_end: Buffer.from("p0") } });
    expect(await until(() => responses("0").some((r) => r.created))).toBe(true);
    await h.backend.put({ key: enc("p/a"), value: enc("1") });
    await h.backend.txn({ compare: [], success: [{ put: { key: enc("p/b"), value: enc("2") } }, { put: { key: enc("p/c"), value: enc("3") } }], failure: [] });
    expect(await until(() => responses("0").filter((r) => r.events.length > 0).length === 2)).toBe(true);
    const [first, second] = responses("0").filter((r) => r.events.length > 0);
    expect(first.events.map((e) => e.kv.key.toString())).toEqual(["p/a"]);
    expect(second.events.map((e) => e.kv.key.toString())).toEqual(["p/b", "p/c"]);
    expect(second.header.revision).toBe(String(h.backend.currentRevision()));
  });

  it("a watch from a compacted revision is created, then canceled with compact_revision", async () => {
    await h.backend.put({ key: enc("q"), value: enc("1") });
    const compactAt = h.backend.currentRevision();
    await h.backend.compact({ revision: compactAt });
    stream.write({ create_request: { key: Buffer.from("q"), start_revision: 1, watch_id: 7 } });
    expect(await until(() => responses("7").some((r) => r.canceled))).toBe(true);
    const [created, canceled] = responses("7");
    expect(created.created).toBe(true);
    expect(canceled.compact_revision).toBe(String(compactAt));
    expect(canceled.cancel_reason).toBe("etcdserver: mvcc: required revision has been compacted");
  });

  it("a progress request is answered with watch_id -1 and the current revision", async () => {
    stream.write({ progress_request: {} });
    expect(await until(() => responses("-1").length > 0)).toBe(true);
    expect(responses("-1")[0].header.revision).toBe(String(h.backend.currentRevision()));
  });

  it("progress_notify watchers hear the revision when idle; cancel answers canceled", async () => {
    stream.write({ create_request: { key: Buffer.from("idle"), progress_notify: true, watch_id: 9 } });
    // The harness ticks every second; bounded polling, no timing assertion.
    expect(await until(() => responses("9").some((r) => !r.created && r.events.length === 0), 50, 200)).toBe(true);
    stream.write({ cancel_request: { watch_id: 9 } });
    expect(await until(() => responses("9").some((r) => r.canceled))).toBe(true);
  });
});
