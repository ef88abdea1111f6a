// The master's Store interface on top of an etcd-shaped backend (the Raft-replicated store, or the in-memory MVCC
// backend): string keys become bytes, compare-and-swap becomes a transaction comparing the key's mod revision,
// and watches map from etcd's events. Callers of Store do not change when the backend does.
import { type EtcdBackend, WatchCompactedError } from "./etcd/backend.js";
import { MvccCompactedError } from "./mvcc/errors.js";
import { keyBytes, keyString, prefixEnd } from "./mvcc/bytes.js";
import { type KeyValue as MvccKeyValue, type WatchEvent as MvccWatchEvent } from "./mvcc/types.js";
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

function toKeyValue(kv: MvccKeyValue): KeyValue {
  return { key: keyString(kv.key), value: kv.value, createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version };
}

function toEvent(e: MvccWatchEvent): WatchEvent {
  return { type: e.type, kv: toKeyValue(e.kv), prev: e.prevKv ? toKeyValue(e.prevKv) : undefined };
}

export class KvStoreAdapter implements Store {
  constructor(
    private readonly backend: EtcdBackend,
    private readonly onClose: () => Promise<void> = async () => undefined,
  ) {}

  async revision(): Promise<number> {
    return this.backend.currentRevision();
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.backend.range({ key: keyBytes(key) }, { serializable: false });
    return res.kvs[0] ? toKeyValue(res.kvs[0]) : undefined;
  }

  async range(prefix: string, options: { limit?: number } = {}): Promise<RangeResult> {
    const key = keyBytes(prefix);
    const res = await this.backend.range({ key, rangeEnd: prefixEnd(key), limit: options.limit ?? 0 }, { serializable: false });
    return { kvs: res.kvs.map(toKeyValue), revision: res.header.revision };
  }

  async put(key: string, value: Uint8Array): Promise<WriteResult> {
    const res = await this.backend.put({ key: keyBytes(key), value, prevKv: true });
    return { revision: res.header.revision, prev: res.prevKv ? toKeyValue(res.prevKv) : undefined };
  }

  async delete(key: string): Promise<WriteResult> {
    const res = await this.backend.deleteRange({ key: keyBytes(key), prevKv: true });
    return { revision: res.header.revision, prev: res.prevKvs[0] ? toKeyValue(res.prevKvs[0]) : undefined };
  }

  async compareAndSwap(key: string, expectedModRevision: number, value: Uint8Array | null): Promise<CompareAndSwapResult> {
    const k = keyBytes(key);
    const write = value === null ? { deleteRange: { key: k } } : { put: { key: k, value } };
    const res = await this.backend.txn({
      compare: [{ key: k, target: "mod", result: "equal", value: expectedModRevision }],
      success: [write, { range: { key: k } }],
      failure: [{ range: { key: k } }],
    });
    const read = res.responses.at(-1);
    const current = read && "range" in read ? read.range.kvs[0] : undefined;
    return { succeeded: res.succeeded, revision: res.header.revision, current: current ? toKeyValue(current) : undefined };
  }

  watch(prefix: string, fromRevision: number, callbacks: WatchCallbacks): Watcher {
    const key = keyBytes(prefix);
    return this.backend.watch(
      { key, rangeEnd: prefixEnd(key) },
      fromRevision,
      { prevKv: true },
      (events, revision) => callbacks.onEvents(events.map(toEvent), revision),
      (e) => callbacks.onError(compactRevisionOf(e) !== undefined ? new CompactedError(fromRevision, compactRevisionOf(e)!) : e),
    );
  }

  async compact(revision: number): Promise<void> {
    await this.backend.compact({ revision });
  }

  async close(): Promise<void> {
    await this.onClose();
  }
}

function compactRevisionOf(e: Error): number | undefined {
  if (e instanceof MvccCompactedError || e instanceof WatchCompactedError) return e.compactRevision;
  return undefined;
}
