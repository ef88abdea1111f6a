export { CompactedError } from "./store.js";
export type {
  CompareAndSwapResult,
  KeyValue,
  RangeResult,
  Store,
  WatchCallbacks,
  WatchEvent,
  Watcher,
  WriteResult,
} from "./store.js";
export { MemoryStore } from "./memory-store.js";
