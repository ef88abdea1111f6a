// The Store interface: an MVCC key-value store with one global revision, as etcd has. The master's API layer
// speaks only to this interface; the in-memory implementation serves a single master, and the Raft-replicated
// one fills the same shape. Revisions are plain numbers: 2^53 writes is beyond any cluster's lifetime.
//
// Invariants: every successful write advances the global revision by exactly one; a key's modRevision is the
// revision of its last write; watch delivers every event after `fromRevision` exactly once, in revision order.

export interface KeyValue {
  key: string;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  /** Writes to this key since its creation; 1 on create. */
  version: number;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** The store's revision at the time of the read. */
  revision: number;
}

export interface WriteResult {
  /** The revision of this write, or the current revision when nothing was written. */
  revision: number;
  prev?: KeyValue;
}

export interface CompareAndSwapResult {
  succeeded: boolean;
  revision: number;
  /** The key's value now: the written one on success, the conflicting one on failure (absent if deleted). */
  current?: KeyValue;
}

export type WatchEvent =
  | { type: "put"; kv: KeyValue; prev?: KeyValue }
  | { type: "delete"; kv: KeyValue; prev?: KeyValue };

export interface Watcher {
  cancel(): void;
}

export interface WatchCallbacks {
  /** Events of one revision arrive together, in revision order. */
  onEvents(events: WatchEvent[], revision: number): void;
  /** The watch has ended and will deliver nothing more (compacted start revision, store closed). */
  onError(error: Error): void;
}

export class CompactedError extends Error {
  constructor(
    readonly requested: number,
    readonly compactRevision: number,
  ) {
    super(`revision ${requested} has been compacted; the oldest available is ${compactRevision + 1}`);
    this.name = "CompactedError";
  }
}

export interface Store {
  /** The current global revision. */
  revision(): Promise<number>;
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key starting with prefix, in key order. */
  range(prefix: string, options?: { limit?: number }): Promise<RangeResult>;
  put(key: string, value: Uint8Array): Promise<WriteResult>;
  delete(key: string): Promise<WriteResult>;
  /**
   * Writes value (or deletes, when value is null) only if the key's modRevision equals expectedModRevision.
   * expectedModRevision 0 means "the key must not exist".
   */
  compareAndSwap(key: string, expectedModRevision: number, value: Uint8Array | null): Promise<CompareAndSwapResult>;
  /**
   * Delivers every change under prefix at or after fromRevision (etcd semantics). 0 means "from now". One that
   * has been compacted fails with CompactedError through onError.
   */
  watch(prefix: string, fromRevision: number, callbacks: WatchCallbacks): Watcher;
  /** Forgets the history at and before revision; watches from there fail with CompactedError. */
  compact(revision: number): Promise<void>;
  close(): Promise<void>;
}
