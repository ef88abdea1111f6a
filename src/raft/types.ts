// The vocabulary of Flotilla's Raft, shared by the pure core, the driver and the storage and transport edges.
// Modelled on etcd-io/raft's raftpb, with string node ids and plain objects.
//
// Indexes and terms are plain numbers: 2^53 entries is beyond any cluster's lifetime.

export type NodeId = string;

/** The empty node id: no vote, no leader. */
export const NONE: NodeId = "";

export type EntryType = "normal" | "conf-change";

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** normal: the application's command (empty for the no-op a new leader appends); conf-change: an encoded ConfChange. */
  data: Uint8Array;
}

/** What must be durable before any message that depends on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

/** One server at a time: add as a learner, promote once caught up, remove. */
export type ConfChangeType = "add-learner" | "promote" | "remove";

export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
  /** Opaque to Raft: how to reach the node (the driver hands it to the transport). */
  context: string;
}

export interface SnapshotMeta {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

export type MessageType =
  // Local messages: never sent over the network.
  | "hup" // start an election
  | "beat" // leader: send heartbeats
  | "check-quorum" // leader: step down if a quorum has not been heard from
  // A proposal: local, or forwarded by a follower to the leader over the network.
  | "prop"
  | "unreachable" // the transport could not reach msg.from
  | "snap-status" // the transport finished (reject=false) or failed (reject=true) sending a snapshot
  | "transfer-leader" // ask the leader to transfer to msg.from
  // Network messages.
  | "app"
  | "app-resp"
  | "vote"
  | "vote-resp"
  | "pre-vote"
  | "pre-vote-resp"
  | "snap"
  | "heartbeat"
  | "heartbeat-resp"
  | "timeout-now"
  | "read-index"
  | "read-index-resp";

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** app: the term of the entry before `entries`; vote: the candidate's last log term; app-resp reject: hint term. */
  logTerm: number;
  /** app: the index before `entries`; vote: the candidate's last index; app-resp: the last index matched (or rejected). */
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** app-resp on reject: the follower's last index, or the index to retry from (fast back-up). */
  rejectHint: number;
  snapshot?: Snapshot;
  /** read-index and heartbeats: the request context that identifies a read. */
  context?: Uint8Array;
}

export interface ReadState {
  /** The commit index at the time the read was confirmed by a quorum; apply up to it, then serve the read. */
  index: number;
  requestCtx: Uint8Array;
}

export type Role = "follower" | "pre-candidate" | "candidate" | "leader";

export interface SoftState {
  leader: NodeId;
  role: Role;
}

/**
 * What the core asks of its caller, in this order: persist hardState, entries and snapshot (synchronously, when
 * mustSync); then send messages; then apply snapshot and committedEntries; then call advance(ready).
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  readStates: ReadState[];
  mustSync: boolean;
}

/** A message skeleton with every field at its zero value. */
export function message(fields: Partial<Message> & Pick<Message, "type">): Message {
  return {
    to: NONE,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...fields,
  };
}

export function isLocalMessage(type: MessageType): boolean {
  return (
    type === "hup" ||
    type === "beat" ||
    type === "check-quorum" ||
    type === "unreachable" ||
    type === "snap-status" ||
    type === "transfer-leader"
  );
}

export function isResponseMessage(type: MessageType): boolean {
  return (
    type === "app-resp" ||
    type === "vote-resp" ||
    type === "pre-vote-resp" ||
    type === "heartbeat-resp" ||
    type === "read-index-resp" ||
    type === "unreachable"
  );
}

export class RaftError extends Error {
  constructor(
    message: string,
    readonly code: "proposal-dropped" | "no-leader" | "transfer-in-progress" | "compacted" | "unavailable" | "snapshot-out-of-date" | "corrupt" | "stopped" | "storage-failed",
  ) {
    super(message);
    this.name = "RaftError";
  }
}
