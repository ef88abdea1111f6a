// An in-process EtcdBackend for testing the etcd API layer: one member, no Raft (term 1, itself the leader), the
// MVCC state machine (src/store/mvcc's MvccStore) applied directly, and a timer-based lessor on top (a keep-alive
// restarts the lease's timer; expiry revokes it through the store, deleting its keys in one revision). The
// Raft-replicated backend differs in proposing the writes instead. Membership changes are refused.

import type {
  CompactionRequest,
  DeleteRangeRequest,
  KeyRange,
  DeleteRangeResponse,
  LeaseGrantRequest,
  LeaseGrantResponse,
  PutResponse,
  RangeResponse,
  TxnResponse,
  LeaseRevokeRequest,
  PutRequest,
  RangeRequest,
  TxnRequest,
} from "../mvcc/types.js";
import { MvccError } from "../mvcc/types.js";
import type { EtcdBackend, LeaseTimeToLive, Member, MemberStatus, WatchListener, WatchOptions } from "./backend.js";
import { UnsupportedError } from "./errors.js";
import { MvccStore } from "../mvcc/mvcc-store.js";

interface Lease {
  id: number;
  ttlSeconds: number;
  expiresAt: number;
  timer: NodeJS.Timeout;
}

export interface MemoryBackendOptions {
  name?: string;
  clientURL?: string;
}

export class MemoryEtcdBackend implements EtcdBackend {
  readonly clusterId = "14841639068965178418";
  readonly memberId = "10276657743932975437";
  private readonly store = new MvccStore();
  /** Expiry timers of the store's leases. */
  private readonly leases = new Map<number, Lease>();

  constructor(private readonly opts: MemoryBackendOptions = {}) {}

  async range(req: RangeRequest): Promise<RangeResponse> {
    return this.store.range(req);
  }
  async put(req: PutRequest): Promise<PutResponse> {
    return this.store.put(req);
  }
  async deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.store.deleteRange(req);
  }
  async txn(req: TxnRequest): Promise<TxnResponse> {
    return this.store.txn(req);
  }
  async compact(req: CompactionRequest): Promise<{ header: { revision: number } }> {
    return this.store.compact(req);
  }
  watch(range: KeyRange, startRevision: number, opts: WatchOptions, onEvents: WatchListener, onError: (e: Error) => void): { cancel(): void } {
    try {
      return this.store.watch(range, startRevision, { prevKv: opts.prevKv, onError }, onEvents);
    } catch (e) {
      // A compacted start revision (MvccCompactedError, carrying compactRevision) is reported, not thrown.
      onError(e instanceof Error ? e : new Error(String(e)));
      return { cancel: () => undefined };
    }
  }
  currentRevision(): number {
    return this.store.revision;
  }
  raftTerm(): number {
    return 1;
  }

  async leaseGrant(req: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    const res = this.store.leaseGrant({ id: req.id, ttlSeconds: Math.max(req.ttlSeconds, 1) });
    const lease: Lease = { id: res.id, ttlSeconds: res.ttlSeconds, expiresAt: 0, timer: setTimeout(() => undefined, 0) };
    this.leases.set(res.id, lease);
    this.arm(lease);
    return res;
  }

  private arm(lease: Lease): void {
    clearTimeout(lease.timer);
    lease.expiresAt = Date.now() + lease.ttlSeconds * 1000;
    // Expiry after an explicit revoke finds nothing to revoke; that is not an error.
    lease.timer = setTimeout(() => this.expire(lease.id), lease.ttlSeconds * 1000);
    lease.timer.unref();
  }

  private expire(id: number): void {
    try {
      this.revoke(id);
    } catch {
      this.leases.delete(id);
    }
  }

  private revoke(id: number): { header: { revision: number } } {
    const lease = this.leases.get(id);
    if (lease) clearTimeout(lease.timer);
    this.leases.delete(id);
    return this.store.leaseRevoke({ id });
  }

  async leaseRevoke(req: LeaseRevokeRequest): Promise<{ header: { revision: number } }> {
    return this.revoke(req.id);
  }

  async leaseKeepAlive(id: number): Promise<{ ttlSeconds: number }> {
    const lease = this.leases.get(id);
    if (!lease) throw new MvccError("lease-not-found", "requested lease not found");
    this.arm(lease);
    return { ttlSeconds: lease.ttlSeconds };
  }

  async leaseTimeToLive(id: number, keys: boolean): Promise<LeaseTimeToLive> {
    const lease = this.leases.get(id);
    const info = this.store.lease(id);
    if (!lease || !info) throw new MvccError("lease-not-found", "requested lease not found");
    const remaining = Math.max(0, Math.ceil((lease.expiresAt - Date.now()) / 1000));
    return { id, ttlSeconds: remaining, grantedTtlSeconds: info.ttlSeconds, keys: keys ? info.keys : [] };
  }

  async leaseList(): Promise<number[]> {
    return this.store.leases().map((l) => l.id);
  }

  private self(): Member {
    const url = this.opts.clientURL ?? "http://127.0.0.1:2379";
    return { id: this.memberId, name: this.opts.name ?? "flotilla-memory", peerURLs: ["http://127.0.0.1:2380"], clientURLs: [url], isLearner: false };
  }

  async members(): Promise<Member[]> {
    return [this.self()];
  }
  async memberAdd(): Promise<{ member: Member; members: Member[] }> {
    throw new UnsupportedError("membership changes are not supported by the in-memory backend");
  }
  async memberRemove(): Promise<Member[]> {
    throw new UnsupportedError("membership changes are not supported by the in-memory backend");
  }
  async memberPromote(): Promise<Member[]> {
    throw new UnsupportedError("membership changes are not supported by the in-memory backend");
  }

  async status(): Promise<MemberStatus> {
    const rev = this.store.revision;
    const dbSize = this.store.snapshot().length;
    return { version: "3.4.0", dbSize, leader: this.memberId, raftIndex: rev, raftTerm: 1, raftAppliedIndex: rev, isLearner: false };
  }

  async *snapshot(): AsyncIterable<Uint8Array> {
    yield this.store.snapshot();
  }

  /** Stops lease timers (tests call this when done). */
  close(): void {
    for (const l of this.leases.values()) clearTimeout(l.timer);
  }
}
