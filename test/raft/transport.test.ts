// The Raft transport: the wire codec (pure round trips) and GrpcTransport between real gRPC servers on 127.0.0.1.
// Nothing here asserts on timing: every wait is a bounded poll for a condition, and "a dead peer does not delay a
// live one" is shown by completion (the live peer gets everything while the dead one is still down).
import * as grpc from "@grpc/grpc-js";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { MessageBatch, MessageType as WireMessageType, RaftTransportClient } from "../../src/gen/flotilla/raft/v1/raft.js";
import { GrpcTransport, type GrpcTransportOptions, RAFT_SERVER_OPTIONS } from "../../src/raft/grpc-transport.js";
import {
  batchEnvelopeBound,
  fromWireMessage,
  SnapshotAssembler,
  snapshotChunks,
  toWireMessage,
  wireSizeBound,
} from "../../src/raft/transport-codec.js";
import { type Message, message, RaftError } from "../../src/raft/types.js";

const FAST_BACKOFF = { initialMs: 20, maxMs: 200 };

function app(from: string, to: string, i: number, bytes = 16): Message {
  return message({
    type: "app",
    from,
    to,
    term: 3,
    logTerm: 2,
    index: i,
    commit: i,
    entries: [{ term: 3, index: i + 1, type: "normal", data: new Uint8Array(randomBytes(bytes)) }],
  });
}

function snap(from: string, to: string, data: Uint8Array): Message {
  const meta = { index: 900, term: 7, confState: { voters: ["a", "b", "c"], learners: ["d"] } };
  return message({ type: "snap", from, to, term: 7, snapshot: { meta, data } });
}

/** Byte arrays as hex: toEqual compares typed arrays element by element, which takes seconds for megabytes. */
function hex(ms: Message[]): unknown[] {
  const h = (b: Uint8Array | undefined): string | undefined => (b ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex") : undefined);
  return ms.map((m) => ({
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: h(e.data) })),
    context: h(m.context),
    snapshot: m.snapshot && { meta: m.snapshot.meta, data: h(m.snapshot.data) },
  }));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// Everything a test starts, stopped after it.
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface TestNode {
  id: string;
  t: GrpcTransport;
  got: Message[];
  /** Network messages only (what peers sent), without the local reports. */
  net: () => Message[];
  reports: (type: "unreachable" | "snap-status", from?: string) => Message[];
}

function node(id: string, opts: Partial<GrpcTransportOptions> = {}): TestNode {
  const got: Message[] = [];
  const t = new GrpcTransport({ id, clusterId: "c1", backoff: FAST_BACKOFF, onMessage: (m) => got.push(m), ...opts });
  cleanups.push(() => t.close());
  return {
    id,
    t,
    got,
    net: () => got.filter((m) => m.type !== "unreachable" && m.type !== "snap-status"),
    reports: (type, from) => got.filter((m) => m.type === type && (from === undefined || m.from === from)),
  };
}

async function serve(n: TestNode, port = 0, options: grpc.ServerOptions = RAFT_SERVER_OPTIONS): Promise<{ address: string; server: grpc.Server }> {
  const server = new grpc.Server(options);
  n.t.addToServer(server);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => server.forceShutdown());
  return { address: `127.0.0.1:${bound}`, server };
}

/** An address where nothing listens (yet): a port the OS handed out, then released. */
async function freeAddress(): Promise<string> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((resolve) => srv.close(resolve));
  return `127.0.0.1:${port}`;
}

/** A peer that accepts TCP connections and never says a word: the worst kind of slow. */
async function blackHole(): Promise<string> {
  const sockets: net.Socket[] = [];
  const srv = net.createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => srv.close(() => resolve()));
  });
  return `127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
}

describe("transport codec", () => {
  const full = (): Message => ({
    ...app("a", "b", 41, 300),
    entries: [
      { term: 3, index: 42, type: "normal", data: new Uint8Array([0, 255, 1, 254]) },
      { term: 3, index: 43, type: "conf-change", data: new Uint8Array(0) },
    ],
    reject: true,
    rejectHint: 40,
    context: new Uint8Array([9, 8, 7]),
    snapshot: { meta: { index: 40, term: 2, confState: { voters: ["a", "b"], learners: ["c"] } }, data: new Uint8Array([5, 6]) },
  });

  it("round-trips every field through the encoded wire form", () => {
    const m = full();
    const bytes = MessageBatch.encode({ from: "a", clusterId: "c1", messages: [toWireMessage(m)] }).finish();
    const back = MessageBatch.decode(bytes).messages.map(fromWireMessage);
    expect(back).toEqual([m]);
    expect(back[0].entries[0].data).toBeInstanceOf(Uint8Array);
    // Absent and empty contexts stay different.
    const noCtx = message({ type: "heartbeat", from: "a", to: "b", term: 1 });
    const emptyCtx = { ...noCtx, context: new Uint8Array(0) };
    for (const x of [noCtx, emptyCtx]) {
      const w = MessageBatch.decode(MessageBatch.encode({ from: "a", clusterId: "", messages: [toWireMessage(x)] }).finish());
      expect(fromWireMessage(w.messages[0])).toEqual(x);
    }
  });

  it("carries a proposal a follower forwards to its leader", () => {
    const prop = message({ type: "prop", from: "b", to: "a", entries: [{ term: 0, index: 0, type: "normal", data: new Uint8Array([1, 2]) }] });
    const w = MessageBatch.decode(MessageBatch.encode({ from: "b", clusterId: "c", messages: [toWireMessage(prop)] }).finish());
    expect(fromWireMessage(w.messages[0])).toEqual(prop);
  });

  it("bounds the encoded size from above", () => {
    for (const m of [full(), message({ type: "vote", from: "ü-node", to: "b" }), app("a", "b", Number.MAX_SAFE_INTEGER - 1, 5000)]) {
      const encoded = MessageBatch.encode({ from: "a", clusterId: "clu", messages: [toWireMessage(m)] }).finish().byteLength;
      expect(encoded).toBeLessThanOrEqual(wireSizeBound(m) + batchEnvelopeBound("a", "clu"));
    }
  });

  it("refuses local types, unknown types and unsafe integers", () => {
    expect(() => toWireMessage(message({ type: "unreachable", from: "b" }))).toThrow(RaftError);
    expect(() => toWireMessage(message({ type: "app", index: -1 }))).toThrow(RaftError);
    expect(() => toWireMessage(message({ type: "app", index: 1.5 }))).toThrow(RaftError);
    const w = toWireMessage(message({ type: "app" }));
    expect(() => fromWireMessage({ ...w, type: WireMessageType.UNRECOGNIZED })).toThrow(RaftError);
    expect(() => fromWireMessage({ ...w, type: WireMessageType.MESSAGE_TYPE_UNSPECIFIED })).toThrow(RaftError);
    expect(() => fromWireMessage({ ...w, term: 2n ** 60n })).toThrow(RaftError);
  });

  it("chunks a snapshot and reassembles it whole", () => {
    const data = new Uint8Array(randomBytes(10_000));
    const m = snap("a", "b", data);
    const chunks = [...snapshotChunks(m, "c1", 3000)];
    expect(chunks.length).toBe(1 + 4 + 1);
    expect(chunks[0].header?.snapshot?.data.byteLength).toBe(0);
    const asm = new SnapshotAssembler();
    const out = chunks.map((c) => asm.push(c));
    expect(out.slice(0, -1).every((x) => x === undefined)).toBe(true);
    expect(out.at(-1)).toEqual(m);
    expect(asm.clusterId).toBe("c1");
  });

  it("rejects a snapshot stream that breaks the protocol", () => {
    const chunks = [...snapshotChunks(snap("a", "b", new Uint8Array(100)), "c1", 40)];
    expect(() => new SnapshotAssembler().push(chunks[1])).toThrow(/without a header/);
    const short = new SnapshotAssembler();
    short.push(chunks[0]);
    short.push(chunks[1]);
    expect(() => short.push(chunks.at(-1)!)).toThrow(/announced/);
  });
});

describe("GrpcTransport", () => {
  it("delivers messages from A to B in order and intact, splitting large batches", async () => {
    const a = node("a", { maxBatchBytes: 48 * 1024 });
    const b = node("b");
    // B accepts at most 64 KiB per message: 100 x 10 KiB arrives only if A splits its batches.
    const { address } = await serve(b, 0, { "grpc.max_receive_message_length": 64 * 1024 });
    a.t.setPeer("b", address);
    const sent: Message[] = [];
    for (let i = 0; i < 100; i++) sent.push({ ...app("a", "b", i, 10 * 1024), context: new Uint8Array([i, 0, 255]) });
    a.t.send(sent.slice(0, 50));
    a.t.send(sent.slice(50));
    await waitFor("B to receive 100 messages", () => b.net().length === 100);
    expect(hex(b.net())).toEqual(hex(sent));
    expect(a.reports("unreachable")).toEqual([]);
  });

  it("streams a multi-MiB snapshot in chunks and reports success to the sender", async () => {
    const a = node("a");
    const b = node("b");
    a.t.setPeer("b", (await serve(b)).address);
    const data = new Uint8Array(randomBytes(5 * 1024 * 1024 + 123));
    const m = snap("a", "b", data);
    a.t.send([m, message({ type: "heartbeat", from: "a", to: "b", term: 7 })]);
    await waitFor("snap-status at A", () => a.reports("snap-status").length === 1);
    expect(a.reports("snap-status")[0]).toMatchObject({ from: "b", to: "a", reject: false });
    const got = b.net().filter((x) => x.type === "snap");
    expect(got).toHaveLength(1);
    expect(got[0].snapshot?.meta).toEqual(m.snapshot?.meta);
    expect(Buffer.from(got[0].snapshot?.data ?? []).equals(Buffer.from(data))).toBe(true);
    await waitFor("the heartbeat beside the snapshot", () => b.net().some((x) => x.type === "heartbeat"));
  });

  it("reports a snapshot that cannot be delivered as failed", async () => {
    const a = node("a");
    a.t.setPeer("d", await freeAddress());
    a.t.send([snap("a", "d", new Uint8Array(10)), snap("a", "nobody", new Uint8Array(10))]);
    await waitFor("two snap-status reports", () => a.reports("snap-status").length === 2);
    expect(a.reports("snap-status").every((m) => m.reject)).toBe(true);
  });

  it("reports a down peer unreachable, and delivers again once it is up", async () => {
    const a = node("a");
    const d = node("d");
    const address = await freeAddress();
    a.t.setPeer("d", address);
    a.t.send([app("a", "d", 0)]);
    await waitFor("unreachable d", () => a.reports("unreachable", "d").length > 0);
    expect(a.reports("unreachable", "d")[0]).toMatchObject({ from: "d", to: "a" });

    await serve(d, Number(address.split(":")[1]));
    // Messages in flight when a stream fails are lost (Raft retransmits), so keep sending until one lands.
    let i = 1;
    await waitFor("delivery after reconnect", () => {
      a.t.send([app("a", "d", i++)]);
      return d.net().length > 0;
    });
    const before = d.net().length;
    const more = Array.from({ length: 20 }, (_, k) => app("a", "d", 1000 + k));
    a.t.send(more);
    await waitFor("the next 20", () => d.net().filter((m) => m.index >= 1000).length === 20);
    expect(hex(d.net().slice(before).filter((m) => m.index >= 1000))).toEqual(hex(more));
  });

  it("keeps delivering to a live peer while others are dead or silent", async () => {
    const a = node("a", { queueLimit: 64 });
    const b = node("b");
    a.t.setPeer("b", (await serve(b)).address);
    a.t.setPeer("dead", await freeAddress());
    a.t.setPeer("silent", await blackHole());
    const toB: Message[] = [];
    for (let round = 0; round < 20; round++) {
      const batch: Message[] = [];
      for (let k = 0; k < 10; k++) {
        const i = round * 10 + k;
        batch.push(app("a", "dead", i, 4096), app("a", "silent", i, 4096), app("a", "b", i, 4096));
      }
      toB.push(...batch.filter((m) => m.to === "b"));
      a.t.send(batch);
      // B gets each round while the others hold on to theirs (the silent one never takes a byte).
      await waitFor(`B to receive round ${round}`, () => b.net().length === toB.length);
    }
    expect(hex(b.net())).toEqual(hex(toB));
    await waitFor("unreachable dead", () => a.reports("unreachable", "dead").length > 0);
    // The silent peer's stream never takes a write, so its queue overflows: dropped, reported.
    await waitFor("unreachable silent", () => a.reports("unreachable", "silent").length > 0);
    expect(a.reports("unreachable", "b")).toEqual([]);
  });

  it("refuses a peer from another cluster", async () => {
    const a = node("a", { clusterId: "other" });
    const b = node("b");
    const { address } = await serve(b);
    a.t.setPeer("b", address);
    a.t.send([app("a", "b", 1), snap("a", "b", new Uint8Array(5))]);
    await waitFor("unreachable b", () => a.reports("unreachable", "b").length > 0);
    await waitFor("failed snapshot", () => a.reports("snap-status").length === 1);
    expect(a.reports("snap-status")[0].reject).toBe(true);
    expect(b.net()).toEqual([]);

    const client = new RaftTransportClient(address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const err = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = client.send((e) => resolve(e));
      call.write({ from: "a", clusterId: "other", messages: [toWireMessage(app("a", "b", 2))] });
    });
    expect(err?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(b.net()).toEqual([]);
  });

  it("drops the oldest messages when a peer's queue overflows, and reports it once", async () => {
    const a = node("a", { queueLimit: 10 });
    const b = node("b");
    a.t.setPeer("b", (await serve(b)).address);
    const sent = Array.from({ length: 25 }, (_, i) => app("a", "b", i));
    a.t.send(sent);
    await waitFor("B to receive the newest 10", () => b.net().length === 10);
    expect(hex(b.net())).toEqual(hex(sent.slice(15)));
    expect(a.reports("unreachable", "b")).toHaveLength(1);
  });

  it("stops delivering after removePeer and close", async () => {
    const a = node("a");
    const b = node("b");
    a.t.setPeer("b", (await serve(b)).address);
    a.t.send([app("a", "b", 1)]);
    await waitFor("first message", () => b.net().length === 1);
    a.t.removePeer("b");
    a.t.send([app("a", "b", 2)]); // to an unknown peer: dropped without a report
    await a.t.close();
    a.t.send([app("a", "b", 3)]);
    expect(b.net()).toHaveLength(1);
    expect(a.reports("unreachable")).toEqual([]);
  });
});
