// The edges of the Raft library, as hashicorp/raft separates them. The core reads the log through LogReader
// (etcd's Storage); the driver persists through LogStorage and SnapshotStorage; the application is a
// StateMachine; the network is a Transport.
import type { ConfState, Entry, HardState, Message, NodeId, Snapshot } from "./types.js";

/** The core's read-only view of the persisted log (etcd-io/raft's Storage). */
export interface LogReader {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries [lo, hi), at most maxBytes of data (at least one entry). Throws RaftError "compacted" below firstIndex. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** The term of entry i; valid from firstIndex()-1 (the snapshot's index) to lastIndex(). */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

/**
 * Durable log and hard state. `append` and `setHardState` may buffer; `sync` makes everything before it durable
 * (fsync/fdatasync). The driver calls sync before sending any message that depends on what it wrote.
 */
export interface LogStorage extends LogReader {
  /** Appends entries, first truncating any existing entries at or after entries[0].index. */
  append(entries: Entry[]): void;
  setHardState(state: HardState): void;
  /** Installs a snapshot: the log is discarded up to its index (and entirely if it conflicts). */
  applySnapshot(snapshot: Snapshot): void;
  /** Discards entries up to and including index (log compaction after a snapshot). */
  compact(index: number): void;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface SnapshotStorage {
  /** Durably stores a snapshot; older ones may be deleted. */
  save(snapshot: Snapshot): Promise<void>;
  /** The newest stored snapshot, if any. */
  latest(): Promise<Snapshot | undefined>;
}

export interface StateMachine {
  /** Applies one committed normal entry; the result is handed to whoever proposed it. */
  apply(entry: { index: number; term: number; data: Uint8Array }): unknown;
  /** A consistent image of the state as of the last applied entry. */
  snapshot(): Promise<Uint8Array>;
  restore(data: Uint8Array): Promise<void>;
}

export interface Transport {
  /** Queues messages for delivery; never blocks on a slow or dead peer. Failures surface as "unreachable". */
  send(messages: Message[]): void;
  /** Where to reach a peer (from ConfChange.context). */
  setPeer(id: NodeId, address: string): void;
  removePeer(id: NodeId): void;
  close(): Promise<void>;
}
