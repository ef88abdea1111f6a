// Conversion between the Raft vocabulary (types.ts) and its wire form (src/gen/flotilla/raft/v1/raft.ts), plus the
// pure pieces of the transport protocol: size bounds for batching, and snapshot chunking and reassembly.
//
// Invariants:
// - Pure: no I/O, no clocks. Byte arrays are shared, never copied (a Buffer view in one direction, a Uint8Array
//   view in the other), so converting a large entry or snapshot costs nothing.
// - Only network messages have a wire form; converting a local one throws. Decoding rejects what the sender
//   could not have meant (unknown types, integers beyond 2^53) with RaftError "corrupt" instead of guessing.
// - wireSizeBound(m) is an upper bound of m's encoded size inside a MessageBatch, so a batch built from bounds
//   never exceeds its budget.
import {
  type ConfState as WireConfState,
  type Entry as WireEntry,
  EntryType as WireEntryType,
  type Message as WireMessage,
  MessageType as WireMessageType,
  type SnapshotChunk,
  type SnapshotMeta as WireSnapshotMeta,
} from "../gen/flotilla/raft/v1/raft.js";
import {
  type ConfState,
  type Entry,
  type EntryType,
  type Message,
  type MessageType,
  type NodeId,
  RaftError,
  type SnapshotMeta,
} from "./types.js";

const MESSAGE_TYPES: ReadonlyArray<[MessageType, WireMessageType]> = [
  ["app", WireMessageType.MESSAGE_TYPE_APP],
  ["app-resp", WireMessageType.MESSAGE_TYPE_APP_RESP],
  ["vote", WireMessageType.MESSAGE_TYPE_VOTE],
  ["vote-resp", WireMessageType.MESSAGE_TYPE_VOTE_RESP],
  ["pre-vote", WireMessageType.MESSAGE_TYPE_PRE_VOTE],
  ["pre-vote-resp", WireMessageType.MESSAGE_TYPE_PRE_VOTE_RESP],
  ["snap", WireMessageType.MESSAGE_TYPE_SNAP],
  ["heartbeat", WireMessageType.MESSAGE_TYPE_HEARTBEAT],
  ["heartbeat-resp", WireMessageType.MESSAGE_TYPE_HEARTBEAT_RESP],
  ["timeout-now", WireMessageType.MESSAGE_TYPE_TIMEOUT_NOW],
  ["read-index", WireMessageType.MESSAGE_TYPE_READ_INDEX],
  ["read-index-resp", WireMessageType.MESSAGE_TYPE_READ_INDEX_RESP],
  // Followers forward proposals to the leader (etcd's MsgProp); without it only the leader could take writes.
  ["prop", WireMessageType.MESSAGE_TYPE_PROP],
];
const TYPE_TO_WIRE = new Map<MessageType, WireMessageType>(MESSAGE_TYPES);
const TYPE_FROM_WIRE = new Map<WireMessageType, MessageType>(MESSAGE_TYPES.map(([t, w]) => [w, t]));

const ENTRY_TYPES: ReadonlyArray<[EntryType, WireEntryType]> = [
  ["normal", WireEntryType.ENTRY_TYPE_NORMAL],
  ["conf-change", WireEntryType.ENTRY_TYPE_CONF_CHANGE],
];
const ENTRY_TYPE_TO_WIRE = new Map<EntryType, WireEntryType>(ENTRY_TYPES);
const ENTRY_TYPE_FROM_WIRE = new Map<WireEntryType, EntryType>(ENTRY_TYPES.map(([t, w]) => [w, t]));

/** Whether a message type has a wire form (the local ones never leave the node). */
export function isNetworkMessageType(type: MessageType): boolean {
  return TYPE_TO_WIRE.has(type);
}

function corrupt(what: string): RaftError {
  return new RaftError(`raft wire: ${what}`, "corrupt");
}

function toU64(n: number, field: string): bigint {
  if (!Number.isSafeInteger(n) || n < 0) throw corrupt(`${field} ${n} is not a non-negative safe integer`);
  return BigInt(n);
}

function fromU64(b: bigint, field: string): number {
  if (b > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`${field} ${b} is beyond 2^53`);
  return Number(b);
}

/** A Buffer over the same memory: the generated code is typed for Buffer, and copying entries would be waste. */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A plain Uint8Array over the same memory, so what the core sees is exactly the type it declares. */
function fromBuffer(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function toWireEntry(e: Entry): WireEntry {
  const type = ENTRY_TYPE_TO_WIRE.get(e.type);
  if (type === undefined) throw corrupt(`entry type "${e.type}"`);
  return { term: toU64(e.term, "entry term"), index: toU64(e.index, "entry index"), type, data: toBuffer(e.data) };
}

export function fromWireEntry(w: WireEntry): Entry {
  const type = ENTRY_TYPE_FROM_WIRE.get(w.type);
  if (type === undefined) throw corrupt(`entry type ${w.type}`);
  return { term: fromU64(w.term, "entry term"), index: fromU64(w.index, "entry index"), type, data: fromBuffer(w.data) };
}

function toWireConfState(c: ConfState): WireConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}

function fromWireConfState(c: WireConfState | undefined): ConfState {
  return { voters: [...(c?.voters ?? [])], learners: [...(c?.learners ?? [])] };
}

export function toWireSnapshotMeta(m: SnapshotMeta): WireSnapshotMeta {
  return { index: toU64(m.index, "snapshot index"), term: toU64(m.term, "snapshot term"), confState: toWireConfState(m.confState) };
}

export function fromWireSnapshotMeta(m: WireSnapshotMeta | undefined): SnapshotMeta {
  if (!m) throw corrupt("snapshot without meta");
  return { index: fromU64(m.index, "snapshot index"), term: fromU64(m.term, "snapshot term"), confState: fromWireConfState(m.confState) };
}

/** Throws RaftError "corrupt" for a local message type or a number that is not a non-negative safe integer. */
export function toWireMessage(m: Message): WireMessage {
  const type = TYPE_TO_WIRE.get(m.type);
  if (type === undefined) throw corrupt(`"${m.type}" is a local message; it never goes on the wire`);
  return {
    type,
    to: m.to,
    from: m.from,
    term: toU64(m.term, "term"),
    logTerm: toU64(m.logTerm, "logTerm"),
    index: toU64(m.index, "index"),
    entries: m.entries.map(toWireEntry),
    commit: toU64(m.commit, "commit"),
    reject: m.reject,
    rejectHint: toU64(m.rejectHint, "rejectHint"),
    snapshot: m.snapshot && { meta: toWireSnapshotMeta(m.snapshot.meta), data: toBuffer(m.snapshot.data) },
    context: m.context && toBuffer(m.context),
  };
}

/** Throws RaftError "corrupt" for an unknown or local type, or an integer beyond 2^53. */
export function fromWireMessage(w: WireMessage): Message {
  const type = TYPE_FROM_WIRE.get(w.type);
  if (type === undefined) throw corrupt(`message type ${w.type}`);
  const m: Message = {
    type,
    to: w.to,
    from: w.from,
    term: fromU64(w.term, "term"),
    logTerm: fromU64(w.logTerm, "logTerm"),
    index: fromU64(w.index, "index"),
    entries: w.entries.map(fromWireEntry),
    commit: fromU64(w.commit, "commit"),
    reject: w.reject,
    rejectHint: fromU64(w.rejectHint, "rejectHint"),
  };
  if (w.snapshot) m.snapshot = { meta: fromWireSnapshotMeta(w.snapshot.meta), data: fromBuffer(w.snapshot.data) };
  if (w.context) m.context = fromBuffer(w.context);
  return m;
}

// Upper bounds of protobuf framing: a tag byte (field numbers < 16), a length varint (< 2^35: 5 bytes), a uint64
// varint (10 bytes). A UTF-16 code unit is at most 3 bytes of UTF-8.
const FIELD = 1 + 5;
const U64 = 1 + 10;
const strBound = (s: string): number => FIELD + 3 * s.length;
// Per message: its own framing in the batch, type, reject, five uint64s, and the entries/snapshot/context headers.
const MESSAGE_OVERHEAD = FIELD + 2 + 2 + 5 * U64 + FIELD + FIELD;
// Per entry: its framing, term, index, type, data header.
const ENTRY_OVERHEAD = FIELD + 2 * U64 + 2 + FIELD;
// Per snapshot: meta framing, index, term, conf state framing, data header.
const SNAPSHOT_OVERHEAD = FIELD + 2 * U64 + FIELD + FIELD;

/** An upper bound of the encoded size of m as one element of MessageBatch.messages. */
export function wireSizeBound(m: Message): number {
  let n = MESSAGE_OVERHEAD + strBound(m.to) + strBound(m.from) + (m.context?.byteLength ?? 0);
  for (const e of m.entries) n += ENTRY_OVERHEAD + e.data.byteLength;
  if (m.snapshot) {
    n += SNAPSHOT_OVERHEAD + m.snapshot.data.byteLength;
    for (const id of [...m.snapshot.meta.confState.voters, ...m.snapshot.meta.confState.learners]) n += strBound(id);
  }
  return n;
}

/** An upper bound of a MessageBatch's size without its messages. */
export function batchEnvelopeBound(from: NodeId, clusterId: string): number {
  return strBound(from) + strBound(clusterId);
}

/**
 * The InstallSnapshot stream for a snap message: a header (the message, its snapshot without data), the data in
 * slices of at most chunkBytes (views, not copies), then an empty final chunk. Throws like toWireMessage.
 */
export function* snapshotChunks(m: Message, clusterId: string, chunkBytes: number): Generator<SnapshotChunk> {
  const data = m.snapshot?.data ?? new Uint8Array(0);
  const header = toWireMessage({ ...m, snapshot: m.snapshot && { meta: m.snapshot.meta, data: new Uint8Array(0) } });
  const empty = Buffer.alloc(0);
  const chunk = (fields: Partial<SnapshotChunk>): SnapshotChunk => ({
    from: "",
    clusterId: "",
    totalBytes: 0n,
    data: empty,
    final: false,
    ...fields,
  });
  yield chunk({ from: m.from, clusterId, header, totalBytes: BigInt(data.byteLength) });
  const step = Math.max(1, chunkBytes);
  for (let at = 0; at < data.byteLength; at += step) yield chunk({ data: toBuffer(data.subarray(at, at + step)) });
  yield chunk({ final: true });
}

/**
 * Reassembles one InstallSnapshot stream. push() returns the complete snap message on the final chunk, undefined
 * before; it throws RaftError "corrupt" when the stream breaks the protocol (no header first, a second header,
 * chunks after the final one, or a total that does not match the header's).
 */
export class SnapshotAssembler {
  private head?: Message;
  private total = 0;
  private received = 0;
  private readonly parts: Uint8Array[] = [];
  private done = false;

  /** The header chunk's sender and cluster, for the receiver's checks; undefined before the first chunk. */
  from?: NodeId;
  clusterId?: string;

  push(c: SnapshotChunk): Message | undefined {
    if (this.done) throw corrupt("snapshot chunk after the final one");
    if (!this.head) return this.start(c);
    if (c.header) throw corrupt("second snapshot header");
    this.received += c.data.byteLength;
    if (this.received > this.total) throw corrupt(`snapshot data beyond the announced ${this.total} bytes`);
    if (c.data.byteLength > 0) this.parts.push(fromBuffer(c.data));
    return c.final ? this.finish(this.head) : undefined;
  }

  /** The snap message of the header chunk (its snapshot without data); undefined before the first chunk. */
  get header(): Message | undefined {
    return this.head;
  }

  private start(c: SnapshotChunk): undefined {
    if (!c.header) throw corrupt("snapshot stream without a header");
    const header = fromWireMessage(c.header);
    if (header.type !== "snap") throw corrupt(`snapshot header of type "${header.type}"`);
    this.total = fromU64(c.totalBytes, "snapshot size");
    if (!header.snapshot && this.total > 0) throw corrupt("snapshot data without a snapshot in the header");
    this.head = header;
    this.from = c.from;
    this.clusterId = c.clusterId;
    return undefined;
  }

  private finish(header: Message): Message {
    this.done = true;
    if (this.received !== this.total) throw corrupt(`snapshot of ${this.received} bytes, announced ${this.total}`);
    const data = new Uint8Array(this.total);
    let at = 0;
    for (const p of this.parts) {
      data.set(p, at);
      at += p.byteLength;
    }
    this.parts.length = 0;
    const meta = header.snapshot?.meta;
    return meta ? { ...header, snapshot: { meta, data } } : header;
  }
}
