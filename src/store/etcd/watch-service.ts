// etcdserverpb.Watch: one bidirectional stream carries many watchers. As etcd 3.4 does: watch_id 0 asks for the next
// free id (ids start at 0); a create answers "created" before any event; events go out one response per revision;
// a watcher whose start revision was compacted gets a response with compact_revision set and canceled; a progress
// request is answered with watch_id -1 (for every watcher on the stream); progress_notify watchers that saw no
// events in an interval get an empty response carrying the current revision.

import type { ServerDuplexStream, UntypedServiceImplementation } from "@grpc/grpc-js";
import { MvccError, type KeyRange, type WatchEvent } from "../mvcc/types.js";
import { WatchCompactedError, type EtcdBackend } from "./backend.js";
import { eventToPb, header, toInt } from "./convert.js";
import { malformedError, toGrpcError } from "./errors.js";
import { MalformedRequest, type PbWatchCreateRequest, type PbWatchRequest } from "./proto.js";

export interface WatchServiceOptions {
  /** How often progress_notify watchers hear the current revision when idle. etcd's default is 10 minutes. */
  progressIntervalMs?: number;
}

interface Watcher {
  cancel(): void;
  progressNotify: boolean;
  /** Set when events were sent since the last progress tick. */
  busy: boolean;
}

type Stream = ServerDuplexStream<PbWatchRequest, object>;

class WatchStream {
  private readonly watchers = new Map<number, Watcher>();
  private nextId = 0;
  private readonly ticker: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly backend: EtcdBackend,
    private readonly stream: Stream,
    progressIntervalMs: number,
  ) {
    this.ticker = setInterval(() => this.progressTick(), progressIntervalMs);
    this.ticker.unref();
    stream.on("data", (req: PbWatchRequest | MalformedRequest) => this.onRequest(req));
    stream.on("end", () => this.close(true));
    stream.on("error", () => this.close(false));
    stream.on("cancelled", () => this.close(false));
  }

  private send(msg: object): void {
    if (!this.closed) this.stream.write(msg);
  }

  private onRequest(req: PbWatchRequest | MalformedRequest): void {
    // A frame that does not decode ends the stream, as a gRPC decoding error does in etcd.
    if (req instanceof MalformedRequest) return void this.stream.emit("error", malformedError(req));
    try {
      if (req.request_union === "create_request" && req.create_request) this.create(req.create_request);
      else if (req.request_union === "cancel_request" && req.cancel_request) this.cancel(toInt(req.cancel_request.watch_id, "watch_id"));
      else if (req.request_union === "progress_request") this.progressAll();
    } catch (e) {
      // A malformed request (e.g. an int64 beyond 2^53) ends the stream with the mapped status, as etcd does.
      this.stream.emit("error", toGrpcError(e));
    }
  }

  private allocateId(requested: number): number | undefined {
    if (requested !== 0) return this.watchers.has(requested) ? undefined : requested;
    while (this.watchers.has(this.nextId)) this.nextId++;
    return this.nextId++;
  }

  private create(c: PbWatchCreateRequest): void {
    const rev = this.backend.currentRevision();
    const id = this.allocateId(toInt(c.watch_id, "watch_id"));
    if (id === undefined) {
      const reason = "mvcc: duplicate watch ID provided on the WatchStream";
      this.send({ header: header(this.backend, rev), watch_id: toInt(c.watch_id), created: true, canceled: true, cancel_reason: reason });
      return;
    }
    const range: KeyRange = { key: new Uint8Array(c.key), rangeEnd: c.range_end.length > 0 ? new Uint8Array(c.range_end) : undefined };
    const start = toInt(c.start_revision, "start_revision");
    const noPut = c.filters.includes("Noput");
    const noDelete = c.filters.includes("Nodelete");
    const w: Watcher = { cancel: () => undefined, progressNotify: c.progress_notify, busy: false };
    this.watchers.set(id, w);
    // "created" first: the backend may deliver history synchronously from inside watch().
    this.send({ header: header(this.backend, rev), watch_id: id, created: true });
    const onEvents = (events: WatchEvent[], revision: number): void => {
      if (!this.watchers.has(id)) return;
      w.busy = true;
      const kept = events.filter((e) => !(noPut && e.type === "put") && !(noDelete && e.type === "delete"));
      for (const batch of byRevision(kept)) this.send({ header: header(this.backend, Math.max(revision, batch.revision)), watch_id: id, events: batch.events.map(eventToPb) });
    };
    const onError = (e: Error): void => this.watcherFailed(id, e);
    const handle = this.backend.watch(range, start > 0 ? start : rev + 1, { prevKv: c.prev_kv }, onEvents, onError);
    if (this.watchers.get(id) === w) w.cancel = () => handle.cancel();
    else handle.cancel(); // failed synchronously
  }

  private watcherFailed(id: number, e: Error): void {
    const w = this.watchers.get(id);
    if (!w) return;
    this.watchers.delete(id);
    w.cancel();
    const msg: Record<string, unknown> = { header: header(this.backend, this.backend.currentRevision()), watch_id: id, canceled: true };
    const compactRevision = compactRevisionOf(e);
    if (compactRevision !== undefined) {
      msg.compact_revision = compactRevision;
      msg.cancel_reason = "etcdserver: mvcc: required revision has been compacted";
    } else {
      msg.cancel_reason = toGrpcError(e).details;
    }
    this.send(msg);
  }

  private cancel(id: number): void {
    const w = this.watchers.get(id);
    if (!w) return; // etcd ignores a cancel for an unknown id
    this.watchers.delete(id);
    w.cancel();
    this.send({ header: header(this.backend, this.backend.currentRevision()), watch_id: id, canceled: true });
  }

  private progressAll(): void {
    this.send({ header: header(this.backend, this.backend.currentRevision()), watch_id: -1 });
  }

  private progressTick(): void {
    for (const [id, w] of this.watchers) {
      if (w.progressNotify && !w.busy) this.send({ header: header(this.backend, this.backend.currentRevision()), watch_id: id });
      w.busy = false;
    }
  }

  private close(endStream: boolean): void {
    clearInterval(this.ticker);
    for (const w of this.watchers.values()) w.cancel();
    this.watchers.clear();
    if (!this.closed && endStream) this.stream.end();
    this.closed = true;
  }
}

/** The compaction point carried by a compacted-watch error (ours, or the MVCC store's MvccCompactedError). */
function compactRevisionOf(e: Error): number | undefined {
  if (e instanceof WatchCompactedError) return e.compactRevision;
  const r = (e as { compactRevision?: unknown }).compactRevision;
  return e instanceof MvccError && e.code === "compacted" && typeof r === "number" && r > 0 ? r : undefined;
}

/** Groups events (already in revision order) into one batch per revision. */
function byRevision(events: WatchEvent[]): { revision: number; events: WatchEvent[] }[] {
  const out: { revision: number; events: WatchEvent[] }[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (last && last.revision === e.kv.modRevision) last.events.push(e);
    else out.push({ revision: e.kv.modRevision, events: [e] });
  }
  return out;
}

export function watchService(backend: EtcdBackend, opts: WatchServiceOptions = {}): UntypedServiceImplementation {
  const interval = opts.progressIntervalMs ?? 10 * 60_000;
  return {
    Watch: (stream: Stream) => {
      new WatchStream(backend, stream, interval);
    },
  };
}
