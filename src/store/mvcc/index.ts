// The MVCC state machine's public surface.
export * from "./types.js";
export { MvccCompactedError, MvccFutureRevisionError } from "./errors.js";
export { MvccStore, type MvccStoreOptions } from "./mvcc-store.js";
export { MvccStateMachine, isApplyError, type MvccApplyError, type MvccApplyResult } from "./state-machine.js";
export { encodeCommand, decodeCommand } from "./codec.js";
export { prefixEnd } from "./bytes.js";
export type { WatchHandle, WatchOptions, WatchCallback } from "./watch.js";
