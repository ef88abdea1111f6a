// The network edge of the Raft library: a Transport over gRPC (service flotilla.raft.v1.RaftTransport), both the
// sending half (one PeerLink per peer) and the receiving half (addToServer).
//
// Invariants:
// - send() never blocks and never throws. Each peer has its own bounded queue, pump, channel and streams, so a slow
//   or dead peer delays nobody else. When a queue overflows, its oldest messages are dropped (Raft retransmits).
// - Per peer, messages travel in send() order over one long-lived Send stream, in batches of at most maxBatchBytes
//   (one larger message goes alone). A stream failure loses what was in flight; the link reconnects with
//   exponential back-off and reports "unreachable" (from = the peer) at most once per back-off period.
// - snap messages bypass the queue: they go through InstallSnapshot in chunks, concurrently with the Send stream
//   (heartbeats keep flowing during a long transfer), one at a time per peer. Every snap given to send() yields
//   exactly one "snap-status" (reject = !delivered) unless the transport is closed.
// - Local reports (unreachable, snap-status) reach onMessage asynchronously, never from inside send().
// - The receiving half delivers only messages of this cluster addressed to this node; anything else ends the
//   stream with an error status, which the sender sees as the peer being unreachable.
import * as grpc from "@grpc/grpc-js";
import {
  type MessageBatch,
  RaftTransportClient,
  type RaftTransportServer,
  RaftTransportService,
  type SendAck,
  type SnapshotAck,
  type SnapshotChunk,
  type Message as WireMessage,
} from "../gen/flotilla/raft/v1/raft.js";
import type { Transport } from "./storage.js";
import {
  batchEnvelopeBound,
  fromWireMessage,
  isNetworkMessageType,
  SnapshotAssembler,
  snapshotChunks,
  toWireMessage,
  wireSizeBound,
} from "./transport-codec.js";
import { type Message, message, type NodeId } from "./types.js";

const MiB = 1024 * 1024;

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export interface GrpcTransportOptions {
  id: NodeId;
  clusterId: string;
  /** Receives network messages from peers and local reports (unreachable, snap-status). Must not throw. */
  onMessage: (m: Message) => void;
  /** Budget of one Send write (default 4 MiB, gRPC's default receive limit). */
  maxBatchBytes?: number;
  /** Messages queued per peer before the oldest are dropped (default 4096). */
  queueLimit?: number;
  backoff?: Backoff;
  /** InstallSnapshot data chunk size (default 1 MiB). */
  snapshotChunkBytes?: number;
  credentials?: grpc.ChannelCredentials;
}

/**
 * Options for the grpc.Server that addToServer registers on. A batch stays within maxBatchBytes, but one message
 * larger than that (a big entry) is sent alone and must still fit the receiver's limit.
 */
export const RAFT_SERVER_OPTIONS: grpc.ServerOptions = { "grpc.max_receive_message_length": 64 * MiB };

interface Queued {
  wire: WireMessage;
  bytes: number;
}

interface LinkConfig {
  self: NodeId;
  clusterId: string;
  maxBatchBytes: number;
  queueLimit: number;
  backoff: Backoff;
  chunkBytes: number;
  credentials: grpc.ChannelCredentials;
  report: (m: Message) => void;
}

interface OpenStream {
  call: grpc.ClientWritableStream<MessageBatch>;
  /** Aborted when the call ends, so a wait for a write cannot outlive it. */
  ended: AbortController;
}

/**
 * Starts an operation that reports completion through a callback, and resolves when it does or when any signal
 * aborts; never rejects, so the pumps need no error paths for waiting.
 */
function settled(start: (done: () => void) => void, ...signals: AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      for (const s of signals) s.removeEventListener("abort", done);
      resolve();
    };
    if (signals.some((s) => s.aborted)) return done();
    for (const s of signals) s.addEventListener("abort", done, { once: true });
    try {
      start(done);
    } catch {
      done(); // a write on a destroyed stream: its call has ended, and that is reported through the call's callback
    }
  });
}

/** Resolves after ms, or at once when the signal aborts (the unref'd timer then just runs out, harmlessly). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return settled((done) => setTimeout(done, ms).unref(), signal);
}

function channelOptions(b: Backoff): grpc.ChannelOptions {
  return {
    // Without these, grpc-js waits up to 120 s between connection attempts, long after the peer is back.
    "grpc.initial_reconnect_backoff_ms": b.initialMs,
    "grpc.max_reconnect_backoff_ms": b.maxMs,
    // A peer that vanishes without a FIN would otherwise hold the stream (and its queue) forever.
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 5_000,
    // Own connections per peer link: independence, and removePeer really closes them.
    "grpc.use_local_subchannel_pool": 1,
    // Raft retransmits by itself. And grpc-js acknowledges writes into its retry buffer (1 MiB per call) at once,
    // even while still connecting: with no buffer, a write completes only when HTTP/2 flow control takes it, so a
    // silent peer stalls its own pump (and overflows its own queue) instead of absorbing batches.
    "grpc.enable_retries": 0,
    "grpc.per_rpc_retry_buffer_size": 0,
  };
}

/** The sending half for one peer: a bounded queue, a pump draining it into a Send stream, and snapshot transfers. */
class PeerLink {
  private readonly client: RaftTransportClient;
  private readonly stop = new AbortController();
  private readonly queue: Queued[] = [];
  private readonly pumping: Promise<void>;
  private wake?: () => void;
  private stream?: OpenStream;
  private backoffMs: number;
  private needsBackoff = false;
  private lastUnreachable = -Infinity;
  private overflowReported = false;
  private snapshotting = false;
  private nextSnapshot?: Message;
  private snapshotCall?: grpc.ClientWritableStream<SnapshotChunk>;

  constructor(
    readonly peer: NodeId,
    readonly address: string,
    private readonly c: LinkConfig,
  ) {
    this.backoffMs = c.backoff.initialMs;
    this.client = new RaftTransportClient(address, c.credentials, channelOptions(c.backoff));
    this.pumping = this.pump();
  }

  enqueue(items: Queued[]): void {
    if (this.stop.signal.aborted) return;
    for (const item of items) this.queue.push(item);
    const excess = this.queue.length - this.c.queueLimit;
    if (excess > 0) {
      this.queue.splice(0, excess);
      // Once per overflow episode (until the queue drains): the core should slow down to probing this peer.
      if (!this.overflowReported) {
        this.overflowReported = true;
        this.reportUnreachable();
      }
    }
    this.wake?.();
  }

  /** One transfer at a time; a newer snapshot replaces a waiting one (which is reported as failed). */
  sendSnapshot(m: Message): void {
    if (this.snapshotting) {
      if (this.nextSnapshot) this.snapStatus(true);
      this.nextSnapshot = m;
      return;
    }
    this.snapshotting = true;
    void this.runSnapshots(m);
  }

  async close(): Promise<void> {
    this.stop.abort();
    this.wake?.();
    this.stream?.call.cancel();
    this.snapshotCall?.cancel();
    await this.pumping;
    this.client.close();
  }

  private async pump(): Promise<void> {
    const stop = this.stop.signal;
    while (!stop.aborted) {
      if (this.queue.length === 0) {
        this.overflowReported = false;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
      } else if (this.needsBackoff) {
        await sleep(this.backoffMs, stop);
        this.backoffMs = Math.min(this.backoffMs * 2, this.c.backoff.maxMs);
        this.needsBackoff = false;
      } else {
        const s = this.stream ?? this.openStream();
        const batch = this.takeBatch();
        // Waiting for each write's callback is stricter than waiting for 'drain' after write() returns false: that
        // happens only at 16 buffered objects (16 x maxBatchBytes per peer). This way at most one batch waits in
        // user space, flow control reaches the queue, and under load the next batch grows instead.
        await settled((done) => s.call.write(batch, done), stop, s.ended.signal);
      }
    }
  }

  /** The oldest messages that fit maxBatchBytes (at least one, however large). */
  private takeBatch(): MessageBatch {
    let budget = this.c.maxBatchBytes - batchEnvelopeBound(this.c.self, this.c.clusterId);
    let n = 0;
    while (n < this.queue.length && (n === 0 || this.queue[n].bytes <= budget)) {
      budget -= this.queue[n].bytes;
      n++;
    }
    return { from: this.c.self, clusterId: this.c.clusterId, messages: this.queue.splice(0, n).map((q) => q.wire) };
  }

  private openStream(): OpenStream {
    const ended = new AbortController();
    const call = this.client.send(() => this.streamEnded(s));
    const s: OpenStream = { call, ended };
    // The receiver sends headers once it has accepted a batch: the peer is really back, so back-off starts over.
    call.on("metadata", () => (this.backoffMs = this.c.backoff.initialMs));
    // Failures arrive through the callback; this only keeps a late write error from becoming an uncaught one.
    call.on("error", () => {});
    this.stream = s;
    return s;
  }

  /** The Send call is over (it only ends by failing, or by our cancel): back off, reconnect on the next batch. */
  private streamEnded(s: OpenStream): void {
    if (s.ended.signal.aborted) return;
    s.ended.abort();
    if (this.stream === s) this.stream = undefined;
    if (this.stop.signal.aborted) return;
    this.needsBackoff = true;
    this.reportUnreachable();
  }

  private reportUnreachable(): void {
    const now = performance.now();
    if (now - this.lastUnreachable < this.backoffMs) return;
    this.lastUnreachable = now;
    this.c.report(message({ type: "unreachable", from: this.peer, to: this.c.self }));
  }

  private snapStatus(reject: boolean): void {
    this.c.report(message({ type: "snap-status", from: this.peer, to: this.c.self, reject }));
  }

  private async runSnapshots(first: Message): Promise<void> {
    let m: Message | undefined = first;
    while (m) {
      this.snapStatus(!(await this.installSnapshot(m)));
      m = this.nextSnapshot;
      this.nextSnapshot = undefined;
    }
    this.snapshotting = false;
  }

  /** Streams one snapshot; true once the receiver has reassembled it and handed it to its node. */
  private async installSnapshot(m: Message): Promise<boolean> {
    const stop = this.stop.signal;
    if (stop.aborted) return false;
    const ended = new AbortController();
    let settle: (ok: boolean) => void = () => {};
    const result = new Promise<boolean>((resolve) => (settle = resolve));
    const call = this.client.installSnapshot((err) => {
      ended.abort();
      settle(err === null);
    });
    call.on("error", () => {});
    this.snapshotCall = call;
    try {
      for (const chunk of snapshotChunks(m, this.c.clusterId, this.c.chunkBytes)) {
        if (stop.aborted || ended.signal.aborted) break;
        await settled((done) => call.write(chunk, done), stop, ended.signal);
      }
      if (stop.aborted) call.cancel();
      else call.end();
    } catch {
      call.cancel(); // the message could not be encoded: fail the transfer rather than the caller
    }
    const ok = await result;
    this.snapshotCall = undefined;
    return ok;
  }
}

/** What the receiving half needs from the transport. */
interface Receiver {
  id: NodeId;
  clusterId: string;
  closed(): boolean;
  deliver(m: Message): void;
}

type Refusal = grpc.ServerErrorResponse | Partial<grpc.StatusObject>;

function refuse(code: grpc.status, details: string): Refusal {
  return { code, details };
}

function checkSender(r: Receiver, clusterId: string): Refusal | undefined {
  if (r.closed()) return refuse(grpc.status.UNAVAILABLE, `raft transport of node "${r.id}" is closed`);
  if (clusterId !== r.clusterId) {
    return refuse(grpc.status.FAILED_PRECONDITION, `cluster "${clusterId}" is not this node's cluster "${r.clusterId}"`);
  }
  return undefined;
}

function checkMessage(r: Receiver, m: Message, from: NodeId): Refusal | undefined {
  if (m.to !== r.id) return refuse(grpc.status.FAILED_PRECONDITION, `message for "${m.to}" reached node "${r.id}"`);
  if (m.from !== from) return refuse(grpc.status.INVALID_ARGUMENT, `message from "${m.from}" on the stream of "${from}"`);
  return undefined;
}

/** Decodes and checks a whole batch before delivering any of it, so a bad batch delivers nothing. */
function acceptBatch(r: Receiver, batch: MessageBatch): Message[] | Refusal {
  const refused = checkSender(r, batch.clusterId);
  if (refused) return refused;
  const out: Message[] = [];
  for (const w of batch.messages) {
    let m: Message;
    try {
      m = fromWireMessage(w);
    } catch (e) {
      return refuse(grpc.status.INVALID_ARGUMENT, (e as Error).message);
    }
    const bad = checkMessage(r, m, batch.from);
    if (bad) return bad;
    out.push(m);
  }
  return out;
}

/** Wraps a client-streaming callback so it is answered once, and delivery stops after the answer. */
function answerOnce<T>(callback: grpc.sendUnaryData<T>, ok: T): { done: () => boolean; finish: (e?: Refusal) => void } {
  let answered = false;
  return {
    done: () => answered,
    finish: (e) => {
      if (answered) return;
      answered = true;
      if (e) callback(e);
      else callback(null, ok);
    },
  };
}

function deliverAll(r: Receiver, messages: Message[]): Refusal | undefined {
  try {
    for (const m of messages) r.deliver(m);
    return undefined;
  } catch (e) {
    return refuse(grpc.status.INTERNAL, `onMessage threw: ${(e as Error).message}`);
  }
}

function serveSend(r: Receiver, call: grpc.ServerReadableStream<MessageBatch, SendAck>, callback: grpc.sendUnaryData<SendAck>): void {
  const answer = answerOnce(callback, {});
  let accepted = false;
  call.on("data", (batch: MessageBatch) => {
    if (answer.done()) return;
    const messages = acceptBatch(r, batch);
    if (!Array.isArray(messages)) return answer.finish(messages);
    if (!accepted) {
      accepted = true;
      call.sendMetadata(new grpc.Metadata()); // tells the sender the link works (it resets its back-off)
    }
    const failed = deliverAll(r, messages);
    if (failed) answer.finish(failed);
  });
  call.on("end", () => answer.finish());
  call.on("error", () => answer.finish(refuse(grpc.status.CANCELLED, "stream failed")));
}

function serveInstallSnapshot(
  r: Receiver,
  call: grpc.ServerReadableStream<SnapshotChunk, SnapshotAck>,
  callback: grpc.sendUnaryData<SnapshotAck>,
): void {
  const answer = answerOnce(callback, {});
  const assembler = new SnapshotAssembler();
  call.on("data", (chunk: SnapshotChunk) => {
    if (answer.done()) return;
    const first = assembler.header === undefined;
    let m: Message | undefined;
    try {
      m = assembler.push(chunk);
    } catch (e) {
      return answer.finish(refuse(grpc.status.INVALID_ARGUMENT, (e as Error).message));
    }
    const header = assembler.header;
    const refused = first && header ? (checkSender(r, chunk.clusterId) ?? checkMessage(r, header, chunk.from)) : undefined;
    if (refused) return answer.finish(refused);
    if (!m) return;
    answer.finish(r.closed() ? refuse(grpc.status.UNAVAILABLE, `raft transport of node "${r.id}" is closed`) : deliverAll(r, [m]));
  });
  call.on("end", () => answer.finish(refuse(grpc.status.INVALID_ARGUMENT, "snapshot stream ended before its final chunk")));
  call.on("error", () => answer.finish(refuse(grpc.status.CANCELLED, "stream failed")));
}

/** Transport over gRPC; see the header comment for its guarantees. */
export class GrpcTransport implements Transport {
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly config: LinkConfig;
  private closed = false;

  constructor(private readonly o: GrpcTransportOptions) {
    this.config = {
      self: o.id,
      clusterId: o.clusterId,
      maxBatchBytes: o.maxBatchBytes ?? 4 * MiB,
      queueLimit: Math.max(1, o.queueLimit ?? 4096),
      backoff: o.backoff ?? { initialMs: 100, maxMs: 2000 },
      chunkBytes: o.snapshotChunkBytes ?? MiB,
      credentials: o.credentials ?? grpc.credentials.createInsecure(),
      report: (m) => this.report(m),
    };
  }

  send(messages: Message[]): void {
    if (this.closed) return;
    const perLink = new Map<PeerLink, Queued[]>();
    for (const m of messages) {
      if (!isNetworkMessageType(m.type) || m.to === this.o.id) continue; // local messages never leave the node
      const link = this.links.get(m.to);
      if (m.type === "snap") {
        if (link) link.sendSnapshot(m);
        else this.report(message({ type: "snap-status", from: m.to, to: this.o.id, reject: true }));
        continue;
      }
      const queued = link && encode(m);
      if (!link || !queued) continue; // an unknown peer, or a message the core should never have built
      const list = perLink.get(link);
      if (list) list.push(queued);
      else perLink.set(link, [queued]);
    }
    for (const [link, items] of perLink) link.enqueue(items);
  }

  setPeer(id: NodeId, address: string): void {
    if (this.closed || id === this.o.id) return;
    const old = this.links.get(id);
    if (old?.address === address) return;
    if (old) void old.close();
    this.links.set(id, new PeerLink(id, address, this.config));
  }

  removePeer(id: NodeId): void {
    const link = this.links.get(id);
    this.links.delete(id);
    if (link) void link.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    const links = [...this.links.values()];
    this.links.clear();
    await Promise.all(links.map((l) => l.close()));
  }

  /** Registers the RaftTransport service: what peers send to this node goes to onMessage. */
  addToServer(server: grpc.Server): void {
    const r: Receiver = {
      id: this.o.id,
      clusterId: this.o.clusterId,
      closed: () => this.closed,
      deliver: (m) => this.o.onMessage(m),
    };
    const impl: RaftTransportServer = {
      send: (call, callback) => serveSend(r, call, callback),
      installSnapshot: (call, callback) => serveInstallSnapshot(r, call, callback),
    };
    server.addService(RaftTransportService, impl);
  }

  /** Local reports go out on a later turn: the driver may be inside send(), in the middle of a Ready. */
  private report(m: Message): void {
    setImmediate(() => {
      if (!this.closed) this.o.onMessage(m);
    });
  }
}

function encode(m: Message): Queued | undefined {
  try {
    return { wire: toWireMessage(m), bytes: wireSizeBound(m) };
  } catch {
    return undefined;
  }
}
