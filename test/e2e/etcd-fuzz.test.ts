// The master never crashes on malformed etcd requests. A real `flotilla master --init` process serves etcd's v3 API;
// a structure-aware fuzzer (seeded, reproducible with FUZZ_SEED) walks the request types of etcd's rpc.proto with
// protobufjs and sends, through grpc-js's generic client (bytes on the wire exactly as generated), a few thousand
// unary requests to every unary method of KV, Lease, Cluster and Maintenance: edge-value int64s, empty, binary, long
// and oversized bytes, out-of-range enums, nested txns, too many txn ops, plus pure random bytes and truncated
// encodings; then about a hundred Watch and LeaseKeepAlive streams of random and structured frames. Every call must
// end with OK or a gRPC status other than INTERNAL or UNKNOWN (an unhandled exception) within its deadline, every
// stream must end with such a status or still answer, and afterwards the master is still running, serves a normal
// Put and Range, and still holds the key written before the fuzzing (deletes are kept away from it, see guardDelete).
import { createRequire } from "node:module";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { afterAll, describe, expect, it } from "vitest";
import { eventually } from "../support/master.js";
import { daemon, requireBuild, type Daemon } from "../support/processes.js";

const HOST = "127.0.1.44";
const ETCD = `${HOST}:17972`;
const ARGS = (data: string) => ["master", "--init", "--name", "fuzz", "--raft-listen", `${HOST}:17971`, "--listen", `${HOST}:17970`, "--data", data, "--etcd-listen", ETCD];

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const UNARY_CALLS = 3000;
const STREAMS = 100;
const IN_FLIGHT = 8;
const STREAMS_IN_FLIGHT = 4;
const DEADLINE_MS = 5_000;
/** How long a stream may take to answer a probe, or to end after the client half-closes it. */
const STREAM_WAIT_MS = 3_000;
/** Nested messages deeper than this are left unset (a Txn still nests RequestOp > Txn > RequestOp > Put). */
const MAX_DEPTH = 5;
/** Every key a delete may reach sorts at or after this; the key written before the fuzzing sorts before it. */
const DELETE_FLOOR = Buffer.from("/fuzz/");
const KNOWN_KEY = Buffer.from("/before-fuzz/known");

// ---- the PRNG and value generators ----

/** mulberry32: a small seeded PRNG, so a failing run is replayed with FUZZ_SEED. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SIGNED_EDGES = ["0", "1", "-1", "2", "2147483647", "2147483648", "-2147483648", "4294967296", "9007199254740991", "9007199254740992", "9007199254740993", "-9007199254740993", "9223372036854775807", "-9223372036854775808"];
const UNSIGNED_EDGES = ["0", "1", "2147483648", "4294967295", "4294967296", "9007199254740992", "9223372036854775807", "9223372036854775808", "18446744073709551615"];
const SAFE_EDGES = ["0", "1", "-1", "2147483648", "9007199254740991", "-9007199254740991"];
const INT32_EDGES = [0, 1, -1, 2147483647, -2147483648];

type Obj = Record<string, unknown>;

class Gen {
  private readonly r: () => number;
  /** Off: int64s stay within 2^53 (most checks pass), so requests reach deeper than the first range check. */
  wild = true;
  constructor(seed: number) {
    this.r = mulberry32(seed);
  }
  below(n: number): number {
    return Math.floor(this.r() * n);
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }
  random(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.below(256);
    return b;
  }

  bytes(): Buffer {
    const k = this.r();
    if (k < 0.15) return Buffer.alloc(0);
    if (k < 0.4) return Buffer.from(`/fuzz/${this.below(20)}`); // a few shared keys, so ranges and compares meet data
    if (k < 0.55) return this.random(1 + this.below(32));
    if (k < 0.6) return Buffer.from([0]);
    if (k < 0.65) return Buffer.alloc(1 + this.below(64), 0xff);
    if (k < 0.75) return Buffer.from(this.pick(["/", "/fuzz", "/fuzz/", "a", "\0\0", "/fuzz/\xff"]), "latin1");
    if (k < 0.78) return this.random(1024 + this.below(64 * 1024 - 1024));
    return Buffer.from(`/fuzz/${this.random(4).toString("hex")}`);
  }

  string(): string {
    const k = this.r();
    if (k < 0.2) return "";
    if (k < 0.35) return `http://${HOST}:${this.below(65536)}`;
    if (k < 0.45) return "\0";
    if (k < 0.55) return "é☃\u{1F600}";
    if (k < 0.6) return "\uD800"; // a lone surrogate: not valid UTF-8 on the wire
    if (k < 0.65) return "x".repeat(1 + this.below(4096));
    return this.random(1 + this.below(24)).toString("latin1");
  }

  /** An int64 as a decimal string (protobufjs encodes strings exactly through `long`). */
  int64(unsigned: boolean): string {
    const k = this.r();
    if (!this.wild) return k < 0.3 ? this.pick(SAFE_EDGES) : String(this.below(k < 0.8 ? 20 : 2 ** 31));
    if (k < 0.45) return this.pick(unsigned ? UNSIGNED_EDGES : SIGNED_EDGES);
    if (k < 0.8) return String(this.below(20));
    const v = (BigInt(this.below(2 ** 32)) << 32n) | BigInt(this.below(2 ** 32));
    return (unsigned ? BigInt.asUintN(64, v) : BigInt.asIntN(64, v)).toString();
  }

  int32(unsigned: boolean): number {
    if (this.chance(0.5)) return unsigned ? this.pick([0, 1, 2147483647, 4294967295]) : this.pick(INT32_EDGES);
    return this.below(100);
  }
}

// ---- etcd's protos, walked field by field ----

const requireHere = createRequire(import.meta.url);
const PROTO_DIR = join(dirname(requireHere.resolve("etcd3/package.json")), "proto");
const root = new protobuf.Root().loadSync(join(PROTO_DIR, "rpc.proto"), { keepCase: true });
root.resolveAll();
const type = (name: string): protobuf.Type => root.lookupType(`etcdserverpb.${name}`);

/** Deletes (anywhere, nested txns included) start at DELETE_FLOOR or later, so none reaches KNOWN_KEY; empty keys stay empty. */
function guardDelete(obj: Obj): void {
  const key = obj.key as Buffer | undefined;
  if (key && key.length > 0 && Buffer.compare(key, DELETE_FLOOR) < 0) obj.key = Buffer.concat([DELETE_FLOOR, key]);
}

function genMessage(g: Gen, t: protobuf.Type, depth: number): Obj {
  const obj: Obj = {};
  for (const oneof of t.oneofsArray) {
    // Usually one member, sometimes none, now and then two (the decoder keeps the last).
    const n = g.chance(0.1) ? 0 : g.chance(0.9) ? 1 : 2;
    for (let i = 0; i < n; i++) {
      const f = g.pick(oneof.fieldsArray);
      const v = genField(g, f, depth);
      if (v !== undefined) obj[f.name] = v;
    }
  }
  for (const f of t.fieldsArray) {
    // Keys are mostly present, or nearly every KV request would stop at "key is not provided".
    if (f.partOf || !g.chance(f.name === "key" ? 0.9 : 0.65)) continue;
    const v = genField(g, f, depth);
    if (v !== undefined) obj[f.name] = v;
  }
  if (t.name === "DeleteRangeRequest") guardDelete(obj);
  return obj;
}

function genField(g: Gen, f: protobuf.Field, depth: number): unknown {
  if (!f.repeated) return genValue(g, f, depth);
  // Txn lists now and then exceed etcd's 128 ops (--max-txn-ops), with shallow ops so the request stays small.
  const many = f.parent?.name === "TxnRequest" && g.chance(0.03);
  const n = many ? 129 + g.below(72) : g.pick([0, 1, 1, 2, 3, 4]);
  const items: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const v = genValue(g, f, many ? Math.max(depth, MAX_DEPTH - 2) : depth);
    if (v !== undefined) items.push(v);
  }
  return items;
}

function genValue(g: Gen, f: protobuf.Field, depth: number): unknown {
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return depth + 1 > MAX_DEPTH ? undefined : genMessage(g, rt, depth + 1);
  if (rt instanceof protobuf.Enum) {
    const values = Object.values(rt.values);
    return g.chance(0.7) ? g.pick(values) : g.pick([-1, Math.max(...values) + 1, 99, 2147483647]);
  }
  switch (f.type) {
    case "int64":
    case "sint64":
    case "sfixed64":
      return g.int64(false);
    case "uint64":
    case "fixed64":
      return g.int64(true);
    case "int32":
    case "sint32":
    case "sfixed32":
      return g.int32(false);
    case "uint32":
    case "fixed32":
      return g.int32(true);
    case "bool":
      return g.chance(0.5);
    case "bytes":
      return g.bytes();
    case "string":
      return g.string();
    default:
      return undefined; // no floats in etcd's requests
  }
}

function encode(t: protobuf.Type, obj: Obj): Buffer {
  return Buffer.from(t.encode(obj).finish());
}

/** The request body: mostly a generated message (half of them tame), else random bytes or a truncated encoding. */
function payload(g: Gen, t: protobuf.Type): Buffer {
  g.wild = g.chance(0.5);
  const k = g.below(100);
  if (k < 10) return g.random(g.chance(0.8) ? g.below(64) : g.below(2048));
  const valid = encode(t, genMessage(g, t, 0));
  if (k < 20 && valid.length > 0) return valid.subarray(0, g.below(valid.length));
  return valid;
}

/** A Txn nested `depth` levels deep (success: [ {request_txn: ...} ]), encoded by hand so the client never recurses. */
function nestedTxn(depth: number): Buffer {
  let txn = encode(type("TxnRequest"), { success: [{ request_put: { key: Buffer.from("/fuzz/deep"), value: Buffer.from("x") } }] });
  const ld = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag]), varint(body.length), body]);
  for (let i = 1; i < depth; i++) txn = ld(0x12, ld(0x22, txn)); // TxnRequest.success = 2, RequestOp.request_txn = 4
  return txn;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

interface Call {
  method: string;
  payload: Buffer;
  /** What the answer ("CODE details") must match, for the requests whose answer etcd fixes. */
  expect?: RegExp;
}

/** Requests every run sends: oversized ones (etcd's 1.5 MiB limit), too many txn ops, deep nesting. */
function specials(): Call[] {
  const big = Buffer.alloc(2 * 1024 * 1024, 0x61);
  const put = (key: string, value: Buffer) => ({ request_put: { key: Buffer.from(key), value } });
  const tooLarge = /^INVALID_ARGUMENT etcdserver: request is too large$/;
  return [
    { method: "/etcdserverpb.KV/Put", payload: encode(type("PutRequest"), { key: Buffer.from("/fuzz/big"), value: big }), expect: tooLarge },
    { method: "/etcdserverpb.KV/Range", payload: encode(type("RangeRequest"), { key: big, range_end: Buffer.from([0]) }) },
    { method: "/etcdserverpb.KV/DeleteRange", payload: encode(type("DeleteRangeRequest"), { key: Buffer.concat([DELETE_FLOOR, big]) }), expect: tooLarge },
    { method: "/etcdserverpb.KV/Txn", payload: encode(type("TxnRequest"), { success: [put("/fuzz/big", big)] }), expect: tooLarge },
    { method: "/etcdserverpb.KV/Txn", payload: encode(type("TxnRequest"), { compare: [{ key: Buffer.from("/fuzz/1"), target: 3, value: big }] }), expect: tooLarge },
    { method: "/etcdserverpb.Cluster/MemberAdd", payload: encode(type("MemberAddRequest"), { peerURLs: [big.toString()] }) },
    {
      method: "/etcdserverpb.KV/Txn",
      payload: encode(type("TxnRequest"), { success: Array.from({ length: 200 }, (_, i) => put(`/fuzz/many/${i}`, Buffer.from("v"))) }),
      expect: /^INVALID_ARGUMENT etcdserver: too many operations in txn request$/,
    },
    { method: "/etcdserverpb.KV/Txn", payload: nestedTxn(2), expect: /^OK $/ },
    // Deeper than the decoder's limit (100 messages, 50 txns): refused as malformed, never a stack overflow.
    ...[64, 128, 129, 200, 1000, 10_000].map((d) => ({ method: "/etcdserverpb.KV/Txn", payload: nestedTxn(d), expect: /^INVALID_ARGUMENT etcdserver: / })),
  ];
}

// ---- calls ----

const identity = (b: Buffer): Buffer => b;

interface Outcome {
  code: grpc.status;
  details: string;
  response?: Buffer;
}

function unary(client: grpc.Client, method: string, body: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(method, identity, identity, body, { deadline: Date.now() + DEADLINE_MS }, (err, response) => {
      if (err) resolve({ code: err.code, details: err.details });
      else resolve({ code: grpc.status.OK, details: "", response });
    });
  });
}

/** Reads a server stream (Maintenance.Snapshot) to its end. */
function serverStream(client: grpc.Client, method: string, body: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(method, identity, identity, body, { deadline: Date.now() + DEADLINE_MS });
    call.on("data", () => undefined);
    call.on("error", () => undefined); // the status event reports it
    call.on("status", (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
  });
}

interface StreamOutcome {
  /** The stream's final status, when it ended. */
  status?: grpc.StatusObject;
  /** It answered the probe sent after the fuzzed frames. */
  answered: boolean;
  /** It did not end after the client's half-close, so we cancelled it (fine only if the master is alive). */
  lingered: boolean;
}

/**
 * One bidi stream: the fuzzed frames, then (if it is still open) a probe it must answer, then the client's half-close,
 * after which it must end; `isProbeAnswer` recognises the probe's answer among the responses.
 */
async function bidi(client: grpc.Client, method: string, frames: Buffer[], probe: Buffer, isProbeAnswer: (r: Buffer) => boolean): Promise<StreamOutcome> {
  const call = client.makeBidiStreamRequest(method, identity, identity, { deadline: Date.now() + 4 * STREAM_WAIT_MS });
  let status: grpc.StatusObject | undefined;
  let answers = 0;
  let wake: () => void = () => undefined;
  call.on("data", (r: Buffer) => {
    if (isProbeAnswer(r)) answers++;
    wake();
  });
  call.on("error", () => undefined); // the status event reports it
  call.on("status", (s: grpc.StatusObject) => {
    status = s;
    wake();
  });
  const until = async (done: () => boolean, ms: number): Promise<void> => {
    const limit = Date.now() + ms;
    while (!done() && Date.now() < limit) await new Promise<void>((r) => ((wake = r), setTimeout(r, 50)));
  };
  for (const f of frames) call.write(f);
  await until(() => status !== undefined, 100);
  let answered = false;
  if (!status) {
    const before = answers;
    call.write(probe);
    await until(() => status !== undefined || answers > before, STREAM_WAIT_MS);
    answered = answers > before;
  }
  call.end();
  await until(() => status !== undefined, STREAM_WAIT_MS);
  const lingered = status === undefined;
  if (lingered) call.cancel();
  return { status, answered, lingered };
}

async function pool<T>(items: T[], width: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await run(items[next++]);
    }),
  );
}

/**
 * An unhandled exception (INTERNAL, UNKNOWN), a hang (DEADLINE_EXCEEDED) or a broken connection. No unary method
 * may wait out its deadline: each needs at most a proposal or a read barrier in a healthy group of one, and none
 * blocks on anything else (no method of etcd's waits for a future event the way a watch does).
 */
function isBad(code: grpc.status, details: string): boolean {
  if (code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN || code === grpc.status.DEADLINE_EXCEEDED) return true;
  // etcd's own UNAVAILABLE answers (no leader, request timed out) say "etcdserver:"; any other is the transport failing.
  return code === grpc.status.UNAVAILABLE && !details.startsWith("etcdserver:");
}

describe("the etcd API under fuzzed requests", () => {
  const dir = mkdtempSync(join(tmpdir(), "flotilla-etcd-fuzz-"));
  let master: Daemon | undefined;
  let client: grpc.Client | undefined;
  afterAll(async () => {
    client?.close();
    await master?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers every malformed request with a status and keeps serving", { timeout: 120_000 }, async () => {
    console.log(`etcd fuzz: FUZZ_SEED=${SEED}`);
    requireBuild();
    const data = join(dir, "fuzz");
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, "admin.token"), "admin.fuzz-test\n");
    master = await daemon(ARGS(data), /master listening/);
    const c = (client = new grpc.Client(ETCD, grpc.credentials.createInsecure()));

    // The encoder is exact for the int64 edges (a rounded value would not exercise the server's range checks).
    const edge = type("LeaseGrantRequest");
    expect(edge.toObject(edge.decode(encode(edge, { ID: "9223372036854775807", TTL: "-9223372036854775808" })), { longs: String })).toEqual({
      ID: "9223372036854775807",
      TTL: "-9223372036854775808",
    });

    const knownValue = Buffer.from(`intact-${SEED}`);
    const putKnown = encode(type("PutRequest"), { key: KNOWN_KEY, value: knownValue });
    await eventually(async () => (await unary(c, "/etcdserverpb.KV/Put", putKnown)).code === grpc.status.OK, 20_000, "the first Put (a leader)");

    const g = new Gen(SEED);
    const methods: { path: string; request: protobuf.Type; kv: boolean }[] = [];
    for (const service of ["KV", "Lease", "Cluster", "Maintenance"]) {
      for (const m of root.lookupService(`etcdserverpb.${service}`).methodsArray) {
        if (m.requestStream || m.responseStream) continue; // Watch, LeaseKeepAlive and Snapshot are fuzzed below
        methods.push({ path: `/etcdserverpb.${service}/${m.name}`, request: m.resolvedRequestType!, kv: service === "KV" });
      }
    }
    const kv = methods.filter((m) => m.kv);
    const calls: Call[] = specials();
    while (calls.length < UNARY_CALLS) {
      // KV gets more than its share: its requests are the deepest.
      const m = g.chance(0.6) ? g.pick(kv) : g.pick(methods);
      calls.push({ method: m.path, payload: payload(g, m.request) });
    }

    const failures: string[] = [];
    let failed = 0;
    const fail = (what: string): void => {
      failed++;
      if (failures.length < 10) failures.push(what);
    };
    const byCode = new Map<string, number>();
    /** Counts the outcome; an offending one is kept with the request (or the stream's frames) as hex. */
    const record = (method: string, code: grpc.status, details: string, sent: () => string): void => {
      const name = `${method.split("/").pop()} ${grpc.status[code]}`;
      byCode.set(name, (byCode.get(name) ?? 0) + 1);
      if (isBad(code, details)) fail(`${method} -> ${grpc.status[code]} ${JSON.stringify(details)}; ${sent()}`);
    };
    const hex = (body: Buffer): string => `payload (${body.length} bytes) ${body.subarray(0, 200).toString("hex")}`;

    const unaryRun = pool(calls, IN_FLIGHT, async ({ method, payload: body, expect: want }) => {
      const r = await unary(c, method, body);
      record(method, r.code, r.details, () => hex(body));
      const answer = `${grpc.status[r.code]} ${r.details}`;
      if (want && !want.test(answer)) fail(`${method} -> ${JSON.stringify(answer)}, expected ${want}; ${hex(body)}`);
    });

    // Streams: Watch and LeaseKeepAlive frames, plus a few snapshots read to their end.
    const watchReq = type("WatchRequest");
    const watchRes = type("WatchResponse");
    const keepAliveReq = type("LeaseKeepAliveRequest");
    const keepAliveRes = type("LeaseKeepAliveResponse");
    // A wild stream's frames are often undecodable or out of range, which ends it early; a tame one's seldom are.
    const frame = (t: protobuf.Type, wild: boolean): Buffer => {
      g.wild = wild;
      const k = g.below(wild ? 100 : 400);
      if (k < 8) return g.random(g.below(48));
      const valid = encode(t, genMessage(g, t, 0));
      return k < 14 && valid.length > 0 ? valid.subarray(0, g.below(valid.length)) : valid;
    };
    const PROBE_LEASE = "777777"; // no such lease: a keep-alive for it is answered with TTL 0
    const streams = Array.from({ length: STREAMS }, (_, i) => {
      const watch = i % 2 === 0;
      const wild = g.chance(0.4);
      const frames = Array.from({ length: 1 + g.below(10) }, () => frame(watch ? watchReq : keepAliveReq, wild));
      return { watch, frames };
    });
    let lingering = 0;
    let answeredProbes = 0;
    const streamRun = pool(streams, STREAMS_IN_FLIGHT, async ({ watch, frames }) => {
      const method = watch ? "/etcdserverpb.Watch/Watch" : "/etcdserverpb.Lease/LeaseKeepAlive";
      const out = watch
        ? await bidi(c, method, frames, encode(watchReq, { progress_request: {} }), (r) => String(watchRes.toObject(watchRes.decode(r), { longs: String }).watch_id) === "-1")
        : await bidi(c, method, frames, encode(keepAliveReq, { ID: PROBE_LEASE }), (r) => String(keepAliveRes.toObject(keepAliveRes.decode(r), { longs: String }).ID) === PROBE_LEASE);
      const sent = () => `frames ${frames.map((f) => f.subarray(0, 60).toString("hex")).join(",")}`;
      if (out.answered) answeredProbes++;
      if (out.lingered) lingering++;
      if (out.status) record(method, out.status.code, out.status.details, sent);
      else if (!out.answered) fail(`${method} neither ended nor answered a probe within ${STREAM_WAIT_MS} ms; ${sent()}`);
    });
    const snapshotRun = (async () => {
      // An empty request, a fuzzed one, and one that cannot decode (a length past the end).
      const snapshot = type("SnapshotRequest");
      for (const body of [Buffer.alloc(0), payload(g, snapshot), Buffer.from([0x0a, 0x05])]) {
        const r = await serverStream(c, "/etcdserverpb.Maintenance/Snapshot", body);
        record("/etcdserverpb.Maintenance/Snapshot", r.code, r.details, () => hex(body));
      }
    })();
    await Promise.all([unaryRun, streamRun, snapshotRun]);

    console.log(
      `etcd fuzz (seed ${SEED}): ${calls.length} unary calls, ${STREAMS} streams (${answeredProbes} answered the probe, ${lingering} cancelled after the half-close); ` +
        [...byCode].sort().map(([k, n]) => `${k}=${n}`).join(", "),
    );
    expect(failed, `FUZZ_SEED=${SEED}: ${failed} calls failed:\n${failures.join("\n")}`).toBe(0);

    // Still running, still serving, and the data from before is intact.
    expect(master.process.exitCode, `FUZZ_SEED=${SEED}: the master exited: ${master.output.slice(-10).join(" | ")}`).toBeNull();
    expect(master.process.signalCode).toBeNull();
    const rangeRes = type("RangeResponse");
    const get = async (key: Buffer): Promise<string | undefined> => {
      const r = await unary(c, "/etcdserverpb.KV/Range", encode(type("RangeRequest"), { key }));
      expect(r.code, `FUZZ_SEED=${SEED}: Range ${key.toString()}: ${r.details}`).toBe(grpc.status.OK);
      const kvs = (rangeRes.decode(r.response!) as unknown as { kvs: { value: Uint8Array }[] }).kvs;
      return kvs[0] ? Buffer.from(kvs[0].value).toString() : undefined;
    };
    const after = await unary(c, "/etcdserverpb.KV/Put", encode(type("PutRequest"), { key: Buffer.from("/after-fuzz"), value: Buffer.from("ok") }));
    expect(after.code, `FUZZ_SEED=${SEED}: Put after fuzzing: ${after.details}`).toBe(grpc.status.OK);
    expect(await get(Buffer.from("/after-fuzz"))).toBe("ok");
    expect(await get(KNOWN_KEY), `FUZZ_SEED=${SEED}: the key written before fuzzing`).toBe(knownValue.toString());
  });
});
