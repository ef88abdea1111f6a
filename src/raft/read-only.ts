// Pending linearizable reads on the leader (etcd-io/raft's read_only.go, ReadOnlySafe only; Raft thesis §6.4).
// A read records the commit index when it arrives; it is served once a quorum acknowledged a heartbeat that
// carried its context, which proves we were still the leader when the commit index was recorded.
//
// Invariant: requests are confirmed in arrival order — an ack for a later context confirms every earlier one too,
// since the heartbeat round that carried it started after they were recorded.
import type { Message, NodeId } from "./types.js";

export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Set<NodeId>;
}

export function contextKey(ctx: Uint8Array): string {
  return Buffer.from(ctx.buffer, ctx.byteOffset, ctx.byteLength).toString("hex");
}

export class ReadOnly {
  private pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  /** Records a read at commit index `index`; a duplicate context is ignored (it is already being confirmed). */
  addRequest(index: number, req: Message): void {
    const key = contextKey(requireContext(req));
    if (this.pending.has(key)) return;
    this.pending.set(key, { req, index, acks: new Set() });
    this.queue.push(key);
  }

  /** Records that `id` acknowledged the heartbeat carrying ctx; returns who acknowledged so far. */
  recvAck(id: NodeId, ctx: Uint8Array): ReadonlySet<NodeId> | undefined {
    const rs = this.pending.get(contextKey(ctx));
    if (!rs) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Dequeues every request up to and including the one with ctx: they are all confirmed. */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = contextKey(ctx);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const done = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    return done.map((k) => {
      const rs = this.pending.get(k);
      if (!rs) throw new Error(`read-only: queued context ${k} has no pending status`);
      this.pending.delete(k);
      return rs;
    });
  }

  /** The context of the newest pending read, attached to heartbeats so they confirm it. */
  lastPendingRequestCtx(): Uint8Array | undefined {
    const key = this.queue[this.queue.length - 1];
    return key === undefined ? undefined : this.pending.get(key)?.req.context;
  }

  pendingCount(): number {
    return this.queue.length;
  }
}

export function requireContext(m: Message): Uint8Array {
  if (!m.context || m.context.byteLength === 0) throw new Error("read-index: the request context must be non-empty");
  return m.context;
}
