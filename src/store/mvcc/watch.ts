// Watchers and the revision log they replay from. The log holds, for every revision after the compaction point,
// the changes written at it in sub-revision order (etcd reads the same from its backend by revision range).
//
// Invariants: a watcher sees every revision >= its start exactly once, in order; the events of one revision are
// delivered in one call; revisions with no event in its range are skipped silently (only `nextRevision` moves).
// Delivery is synchronous, inside the apply that wrote the revision; fan-out to clients is the caller's job.
import type { Bounds } from "./bytes.js";
import { inBounds } from "./bytes.js";
import type { KeyHistory, Version } from "./key-index.js";
import type { WatchEvent } from "./types.js";

export interface Change {
  h: KeyHistory;
  v: Version;
  /** The live version it replaced, if any. */
  prev: Version | undefined;
}

export interface LogRecord {
  rev: number;
  changes: Change[];
}

export interface WatchOptions {
  prevKv?: boolean;
  /** Called when the watch ends by itself: onEvents threw, or a restored snapshot compacted past it. */
  onError?: (error: Error) => void;
}

export type WatchCallback = (events: WatchEvent[], revision: number) => void;

export interface WatchHandle {
  readonly id: number;
  /** The next revision this watch will deliver. */
  readonly nextRevision: number;
  cancel(): void;
}

export class Watcher implements WatchHandle {
  cancelled = false;

  constructor(
    readonly id: number,
    private readonly bounds: Bounds,
    public nextRevision: number,
    private readonly options: WatchOptions,
    private readonly onEvents: WatchCallback,
    private readonly onCancel: (w: Watcher) => void,
  ) {}

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.onCancel(this);
  }

  /** Delivers one revision if it is due and has events in range. */
  deliver(record: LogRecord): void {
    if (this.cancelled || record.rev < this.nextRevision) return;
    this.nextRevision = record.rev + 1;
    const events: WatchEvent[] = [];
    for (const c of record.changes) {
      if (!inBounds(this.bounds, c.h.key)) continue;
      const event: WatchEvent = { type: c.v.tombstone ? "delete" : "put", kv: c.h.toKeyValue(c.v) };
      if (this.options.prevKv && c.prev !== undefined) event.prevKv = c.h.toKeyValue(c.prev);
      events.push(event);
    }
    if (events.length === 0) return;
    try {
      this.onEvents(events, record.rev);
    } catch (err) {
      // The revision is committed whatever a consumer does; a failing consumer loses its watch, not the store.
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  fail(error: Error): void {
    this.cancel();
    if (this.options.onError) this.options.onError(error);
    else
      queueMicrotask(() => {
        throw error;
      });
  }
}

/** Index of the first record with rev >= from. */
export function firstRecordAt(log: LogRecord[], from: number): number {
  let lo = 0;
  let hi = log.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (log[mid].rev < from) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The set of live watchers; cancel during delivery is safe (delivery iterates a copy). */
export class WatchHub {
  private readonly watchers = new Set<Watcher>();
  private nextId = 1;

  get size(): number {
    return this.watchers.size;
  }

  add(bounds: Bounds, start: number, options: WatchOptions, onEvents: WatchCallback): Watcher {
    const w = new Watcher(this.nextId++, bounds, start, options, onEvents, (x) => this.watchers.delete(x));
    this.watchers.add(w);
    return w;
  }

  /** Replays log records from the watcher's next revision. */
  catchUp(w: Watcher, log: LogRecord[]): void {
    for (let i = firstRecordAt(log, w.nextRevision); i < log.length && !w.cancelled; i++) w.deliver(log[i]);
  }

  notify(record: LogRecord): void {
    if (this.watchers.size === 0) return;
    for (const w of [...this.watchers]) w.deliver(record);
  }

  all(): Watcher[] {
    return [...this.watchers];
  }
}
