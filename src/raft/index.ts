// Flotilla's Raft library: the pure core (RawNode and its parts), the in-memory log, and the shared vocabulary.
export { mayDepartBeforePersist, RawNode, type ProgressStatus, type Status } from "./raw-node.js";
export { CAMPAIGN_TRANSFER, type RaftConfig } from "./raft.js";
export { MemoryLog } from "./memory-log.js";
export { encodeConfChange, decodeConfChange } from "./conf-change.js";
export { committedIndex, quorumSize, voteResult, type VoteResult } from "./quorum.js";
export { Inflights } from "./inflights.js";
export { Progress, type ProgressState } from "./progress.js";
export {
  NONE,
  RaftError,
  message,
  isLocalMessage,
  isResponseMessage,
  type ConfChange,
  type ConfChangeType,
  type ConfState,
  type Entry,
  type EntryType,
  type HardState,
  type Message,
  type MessageType,
  type NodeId,
  type ReadState,
  type Ready,
  type Role,
  type Snapshot,
  type SnapshotMeta,
  type SoftState,
} from "./types.js";
export type { LogReader, LogStorage, SnapshotStorage, StateMachine, Transport } from "./storage.js";
