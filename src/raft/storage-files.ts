// The durable storage of the Raft library: the file-backed LogStorage and SnapshotStorage and their options.
// (src/raft/index.ts re-exports this barrel.)
export { crc32c } from "./crc32c.js";
export { FileLogStorage, type FileLogStorageOptions } from "./file-log-storage.js";
export { FileSnapshotStorage, type FileSnapshotStorageOptions, type SnapshotCorruption } from "./file-snapshot-storage.js";
export { DEFAULT_SEGMENT_SIZE, type WalOptions, type WalRepair } from "./wal.js";
