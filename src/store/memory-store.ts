// In-memory MVCC store for a single master. Keeps the latest value per key plus an event history, so watches can
// start from any revision after the compaction point. History is compacted automatically once it exceeds
// `historyLimit` revisions, which bounds memory.
import {
  CompactedError,
  type CompareAndSwapResult,
  type KeyValue,
  type RangeResult,
  type Store,
  type WatchCallbacks,
  type WatchEvent,
  type Watcher,
  type WriteResult,
} from "./store.js";

interface HistoryEntry {
  revision: number;
  event: WatchEvent;
}

interface ActiveWatch {
  prefix: string;
  callbacks: WatchCallbacks;
}

export interface MemoryStoreOptions {
  /** Revisions of history kept for watches; older ones are compacted. */
  historyLimit?: number;
}

export class MemoryStore implements Store {
  private readonly data = new Map<string, KeyValue>();
  private readonly history: HistoryEntry[] = [];
  private readonly watches = new Set<ActiveWatch>();
  private currentRevision = 0;
  private compactedRevision = 0;
  private closed = false;
  private readonly historyLimit: number;

  constructor(options: MemoryStoreOptions = {}) {
    this.historyLimit = options.historyLimit ?? 50_000;
  }

  async revision(): Promise<number> {
    return this.currentRevision;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return this.data.get(key);
  }

  async range(prefix: string, options: { limit?: number } = {}): Promise<RangeResult> {
    const keys = [...this.data.keys()].filter((k) => k.startsWith(prefix)).sort();
    const limited = options.limit ? keys.slice(0, options.limit) : keys;
    return { kvs: limited.map((k) => this.data.get(k)!), revision: this.currentRevision };
  }

  async put(key: string, value: Uint8Array): Promise<WriteResult> {
    this.assertOpen();
    return this.write(key, value);
  }

  async delete(key: string): Promise<WriteResult> {
    this.assertOpen();
    if (!this.data.has(key)) return { revision: this.currentRevision };
    return this.write(key, null);
  }

  async compareAndSwap(key: string, expected: number, value: Uint8Array | null): Promise<CompareAndSwapResult> {
    this.assertOpen();
    const current = this.data.get(key);
    if ((current?.modRevision ?? 0) !== expected) {
      return { succeeded: false, revision: this.currentRevision, current };
    }
    if (value === null && !current) return { succeeded: true, revision: this.currentRevision };
    const result = this.write(key, value);
    return { succeeded: true, revision: result.revision, current: this.data.get(key) };
  }

  watch(prefix: string, fromRevision: number, callbacks: WatchCallbacks): Watcher {
    const active: ActiveWatch = { prefix, callbacks };
    const cancel = () => this.watches.delete(active);
    if (fromRevision > 0 && fromRevision <= this.compactedRevision) {
      queueMicrotask(() => callbacks.onError(new CompactedError(fromRevision, this.compactedRevision)));
      return { cancel };
    }
    // Replay is synchronous with registration, so no write can slip between the two.
    if (fromRevision > 0) this.replay(active, fromRevision);
    this.watches.add(active);
    return { cancel };
  }

  async compact(revision: number): Promise<void> {
    const upTo = Math.min(revision, this.currentRevision);
    let drop = 0;
    while (drop < this.history.length && this.history[drop].revision <= upTo) drop++;
    this.history.splice(0, drop);
    this.compactedRevision = Math.max(this.compactedRevision, upTo);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watches) w.callbacks.onError(new Error("store closed"));
    this.watches.clear();
  }

  private write(key: string, value: Uint8Array | null): WriteResult {
    const prev = this.data.get(key);
    const revision = ++this.currentRevision;
    let event: WatchEvent;
    if (value === null) {
      this.data.delete(key);
      const tombstone: KeyValue = { key, value: new Uint8Array(), createRevision: 0, modRevision: revision, version: 0 };
      event = { type: "delete", kv: tombstone, prev };
    } else {
      const kv: KeyValue = {
        key,
        value,
        createRevision: prev?.createRevision ?? revision,
        modRevision: revision,
        version: (prev?.version ?? 0) + 1,
      };
      this.data.set(key, kv);
      event = { type: "put", kv, prev };
    }
    this.history.push({ revision, event });
    if (this.history.length > this.historyLimit) void this.compact(revision - this.historyLimit);
    this.notify(event, revision);
    return { revision, prev };
  }

  private replay(active: ActiveWatch, fromRevision: number): void {
    for (const entry of this.history) {
      if (entry.revision < fromRevision || !entry.event.kv.key.startsWith(active.prefix)) continue;
      active.callbacks.onEvents([entry.event], entry.revision);
    }
  }

  private notify(event: WatchEvent, revision: number): void {
    for (const w of this.watches) {
      if (event.kv.key.startsWith(w.prefix)) w.callbacks.onEvents([event], revision);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("store closed");
  }
}
