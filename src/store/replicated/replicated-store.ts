// The masters' store: the MVCC state machine replicated by src/raft. Every master applies the same log, so any
// master serves reads (linearizable through ReadIndex unless asked for serializable) and watches (from its own
// applied log, so no event is lost or reordered across a leader change); writes are proposed, and a follower's
// proposal is forwarded to the leader by Raft itself. It implements the etcd API's backend, and through
// KvStoreAdapter the master's Store interface.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { writeFileDurably } from "../../common/durable-file.js";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { FileLogStorage } from "../../raft/file-log-storage.js";
import { FileSnapshotStorage } from "../../raft/file-snapshot-storage.js";
import { GrpcTransport, RAFT_SERVER_OPTIONS } from "../../raft/grpc-transport.js";
import { RaftNode } from "../../raft/node.js";
import { osRandom } from "../../raft/random.js";
import type { StateMachine } from "../../raft/storage.js";
import { NONE, RaftError, type SoftState } from "../../raft/types.js";
import type { EtcdBackend, LeaseTimeToLive, Member, MemberStatus, WatchListener, WatchOptions } from "../etcd/backend.js";
import { LearnerNotReadyError, MemberNotFoundError, RequestTooLargeError, UnsupportedError } from "../etcd/errors.js";
import { isApplyError, MvccStateMachine } from "../mvcc/state-machine.js";
import {
  type CompactionRequest,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type KeyRange,
  type LeaseGrantRequest,
  type LeaseGrantResponse,
  type LeaseRevokeRequest,
  type MvccCommand,
  MvccError,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequest,
  type TxnResponse,
} from "../mvcc/types.js";
import { decodeReplicated, encodeReplicated, type ReplicatedCommand } from "./commands.js";
import { Lessor } from "./lessor.js";

export interface ReplicatedStoreOptions {
  /** This master's member name, such as "m1". */
  id: string;
  dataDir: string;
  /** host:port where this master's Raft transport listens (the peer port). */
  raftListen: string;
  /** Every member's Raft address, this one included: the initial cluster. */
  peers: Map<string, string>;
  /** Each member's client (API) address, for etcd's member list. */
  clientUrls?: Map<string, string>;
  tickMs?: number;
  electionTick?: number;
  snapshotThreshold?: number;
  /** Joining an existing group: start as this learner of the group's current voters (ignored once data exists). */
  joinAs?: { voters: string[]; learners: string[] };
  /** The group's id when joining one; otherwise derived from the initial cluster. Kept in the data directory. */
  clusterId?: string;
}

/** Where each master's Raft address is recorded, in the replicated store itself, so every member (and every
 *  restart, even after the conf-change entries are compacted away) can reach members added later. */
export const MEMBERS_PREFIX = "/flotilla/members/";

/**
 * Entries between two snapshots of the state machine: etcd's --snapshot-count default. A snapshot serializes the
 * whole store on the event loop (about 45 ms at 10,000 revisions of 256-byte values, 215 ms at 100,000), so taking
 * one every 10,000 entries showed in the tail latency under load; the compactor keeps the store itself small.
 */
export const DEFAULT_SNAPSHOT_THRESHOLD = 100_000;

/** etcd's default request limit, 1.5 MiB (of the encoded command). */
export const MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

/** etcd's member and cluster ids are uint64s; ours derive from names, so every master computes the same ones. */
export function memberIdOf(name: string): string {
  return BigInt(`0x${createHash("sha256").update(name).digest("hex").slice(0, 15)}`).toString();
}


export class ReplicatedStore implements EtcdBackend {
  readonly clusterId: string;
  readonly memberId: string;
  private readonly machine = new MvccStateMachine();
  private readonly lessor: Lessor;
  private readonly leadershipListeners = new Set<(leader: boolean) => void>();
  private node?: RaftNode;
  private transport?: GrpcTransport;
  private server?: grpc.Server;
  private storage?: FileLogStorage;
  private ticker?: NodeJS.Timeout;
  private leader = false;
  private promoting = false;
  private failure?: RaftError;
  private readonly failureListeners = new Set<(error: RaftError) => void>();

  private constructor(private readonly o: ReplicatedStoreOptions) {
    this.memberId = memberIdOf(o.id);
    // Fixed at the group's birth and kept on disk: the peer list changes later, the id must not.
    const saved = join(o.dataDir, "cluster-id");
    this.clusterId = existsSync(saved) ? readFileSync(saved, "utf8").trim() : (o.clusterId ?? memberIdOf([...o.peers.keys()].sort().join(",")));
    mkdirSync(o.dataDir, { recursive: true });
    if (!existsSync(saved)) writeFileDurably(saved, `${this.clusterId}\n`);
    this.lessor = new Lessor(
      (id) => this.machine.store.lease(id)?.ttlSeconds,
      (id) => this.propose({ mvcc: { leaseRevoke: { id } } }),
    );
  }

  static async open(o: ReplicatedStoreOptions): Promise<ReplicatedStore> {
    const store = new ReplicatedStore(o);
    await store.start();
    return store;
  }

  private async start(): Promise<void> {
    const dir = `${this.o.dataDir}/raft`;
    const snapshots = new FileSnapshotStorage(dir);
    this.storage = await FileLogStorage.open(dir, { snapshots });
    this.transport = new GrpcTransport({ id: this.o.id, clusterId: this.clusterId, onMessage: (m) => this.node?.step(m) });
    for (const [id, address] of this.o.peers) if (id !== this.o.id) this.transport.setPeer(id, address);
    this.server = new grpc.Server(RAFT_SERVER_OPTIONS);
    this.transport.addToServer(this.server);
    await new Promise<void>((resolve, reject) =>
      this.server!.bindAsync(this.o.raftListen, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
    );
    this.node = await RaftNode.start({
      id: this.o.id,
      storage: this.storage,
      snapshots,
      stateMachine: this.stateMachine(),
      transport: this.transport,
      random: osRandom,
      bootstrap: this.bootstrapMembership(),
      electionTick: this.o.electionTick ?? 10,
      snapshotThreshold: this.o.snapshotThreshold ?? DEFAULT_SNAPSHOT_THRESHOLD,
      onSoftState: (s) => this.onSoftState(s),
      onFatal: (e) => this.onFatal(e),
    });
    this.ticker = setInterval(() => {
      this.node!.tick();
      this.promoteCaughtUpLearners();
    }, this.o.tickMs ?? 50);
    this.followMemberAddresses();
    void this.announceSelf();
  }

  /**
   * The membership this master's log starts from, fixed at its first start and kept on disk: the conf-change entries
   * in the log apply on top of it, so a restart must begin from the same base (a joined master's flags alone would
   * make it a group of one).
   */
  private bootstrapMembership(): { voters: string[]; learners: string[] } {
    const file = join(this.o.dataDir, "bootstrap.json");
    if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as { voters: string[]; learners: string[] };
    const membership = this.o.joinAs ?? { voters: [...this.o.peers.keys()], learners: [] };
    writeFileDurably(file, JSON.stringify(membership));
    return membership;
  }

  /** Peers recorded in the store (members added after the initial cluster) become reachable, now and as they change. */
  private followMemberAddresses(): void {
    const key = new TextEncoder().encode(MEMBERS_PREFIX);
    const rangeEnd = new TextEncoder().encode(MEMBERS_PREFIX.slice(0, -1) + "0");
    const learn = (k: Uint8Array, v: Uint8Array) => {
      const name = new TextDecoder().decode(k).slice(MEMBERS_PREFIX.length);
      const address = new TextDecoder().decode(v);
      if (name === this.o.id || !address) return;
      this.o.peers.set(name, address);
      this.transport!.setPeer(name, address);
    };
    for (const kv of this.machine.store.range({ key, rangeEnd }).kvs) learn(kv.key, kv.value);
    this.machine.store.watch({ key, rangeEnd }, 0, { prevKv: false, onError: () => undefined }, (events) => {
      for (const e of events) if (e.type === "put") learn(e.kv.key, e.kv.value);
    });
  }

  /**
   * Adds a master as a learner (its address recorded first, so every member can reach it); the leader promotes it
   * once it has caught up. Returns the group as the new member must start it.
   */
  async addMember(name: string, raftAddress: string): Promise<string> {
    const { voters, learners } = this.node!.membership();
    if ([...voters, ...learners].includes(name)) return this.clusterId;
    await this.recordAddress(name, raftAddress);
    await this.node!.addLearner(name, raftAddress);
    return this.clusterId;
  }

  private async recordAddress(name: string, raftAddress: string): Promise<void> {
    await this.put({ key: new TextEncoder().encode(MEMBERS_PREFIX + name), value: new TextEncoder().encode(raftAddress) });
  }

  /** Records this master's own address in the store once a leader exists (retrying until then). */
  private async announceSelf(): Promise<void> {
    const key = new TextEncoder().encode(MEMBERS_PREFIX + this.o.id);
    for (let attempt = 0; attempt < 300 && this.node; attempt++) {
      try {
        const known = this.machine.store.range({ key }).kvs[0];
        if (known && new TextDecoder().decode(known.value) === this.o.raftListen) return;
        await this.recordAddress(this.o.id, this.o.raftListen);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** The leader promotes learners whose logs have caught up with its commit index. */
  private promoteCaughtUpLearners(): void {
    if (!this.leader || this.promoting) return;
    const learner = this.node!.membership().learners.find((l) => this.node!.caughtUp(l));
    if (!learner) return;
    this.promoting = true;
    this.node!.promote(learner).catch(() => undefined).finally(() => (this.promoting = false));
  }

  /** The MVCC state machine, with lease deadlines kept in step with what is applied. */
  private stateMachine(): StateMachine {
    return {
      apply: (entry) => {
        if (entry.data.length === 0) return undefined;
        const command = decodeReplicated(entry.data);
        if ("leaseRenew" in command) return this.applyRenew(command.leaseRenew.id);
        const result = this.machine.apply({ ...entry, data: entry.data.subarray(1) });
        if (!isApplyError(result) && result) this.noteLease(command.mvcc, result);
        return result;
      },
      snapshot: () => this.machine.snapshot(),
      restore: async (data) => {
        await this.machine.restore(data);
        for (const lease of this.machine.store.leases()) this.lessor.renewed(lease.id);
      },
    };
  }

  private applyRenew(id: number): unknown {
    const lease = this.machine.store.lease(id);
    if (!lease) return { error: { code: "lease-not-found", message: "requested lease not found" } };
    this.lessor.renewed(id);
    return { header: { revision: this.machine.store.revision }, ttlSeconds: lease.ttlSeconds };
  }

  private noteLease(command: MvccCommand, result: unknown): void {
    if ("leaseGrant" in command) this.lessor.renewed((result as LeaseGrantResponse).id);
    if ("leaseRevoke" in command) this.lessor.revoked(command.leaseRevoke.id);
  }

  private onSoftState(state: SoftState): void {
    const leading = state.role === "leader";
    if (leading === this.leader) return;
    this.leader = leading;
    if (leading) this.lessor.lead(this.machine.store.leases().map((l) => l.id));
    else this.lessor.follow();
    for (const listener of this.leadershipListeners) listener(leading);
  }

  /** The Raft node stopped (its log could not be persisted): stop leading at once, and tell whoever listens. */
  private onFatal(error: RaftError): void {
    this.failure = error;
    if (this.leader) this.onSoftState({ leader: NONE, role: "follower" });
    for (const listener of this.failureListeners) listener(error);
  }

  /** Calls `listener` once if this member's store stops for good (disk full, failed fsync). */
  onFailure(listener: (error: RaftError) => void): void {
    if (this.failure) queueMicrotask(() => listener(this.failure!));
    else this.failureListeners.add(listener);
  }

  /** Leadership for the control plane: it runs only while this master leads. */
  subscribe(onChange: (leader: boolean) => void): () => void {
    this.leadershipListeners.add(onChange);
    if (this.leader) queueMicrotask(() => onChange(true));
    return () => this.leadershipListeners.delete(onChange);
  }

  isLeader(): boolean {
    return this.leader;
  }

  private async propose(command: ReplicatedCommand): Promise<unknown> {
    // etcd's --max-request-bytes default: larger requests would slow every member's log and snapshots.
    if ("mvcc" in command && requestBytes(command.mvcc) > MAX_REQUEST_BYTES) throw new RequestTooLargeError();
    const data = encodeReplicated(command);
    const result = await this.node!.propose(data);
    if (isApplyError(result)) throw new MvccError(result.error.code, result.error.message);
    return result;
  }

  private async barrier(serializable: boolean): Promise<void> {
    if (!serializable) await this.node!.readBarrier();
  }

  async range(req: RangeRequest, opts: { serializable: boolean }): Promise<RangeResponse> {
    await this.barrier(opts.serializable);
    return this.machine.store.range(req);
  }

  async put(req: PutRequest): Promise<PutResponse> {
    return (await this.propose({ mvcc: { put: req } })) as PutResponse;
  }

  async deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return (await this.propose({ mvcc: { deleteRange: req } })) as DeleteRangeResponse;
  }

  async txn(req: TxnRequest): Promise<TxnResponse> {
    return (await this.propose({ mvcc: { txn: req } })) as TxnResponse;
  }

  async compact(req: CompactionRequest): Promise<{ header: ResponseHeader }> {
    return (await this.propose({ mvcc: { compact: req } })) as { header: ResponseHeader };
  }

  watch(range: KeyRange, startRevision: number, opts: WatchOptions, onEvents: WatchListener, onError: (e: Error) => void): { cancel(): void } {
    try {
      return this.machine.store.watch(range, startRevision, { prevKv: opts.prevKv, onError }, onEvents);
    } catch (e) {
      onError(e instanceof Error ? e : new Error(String(e)));
      return { cancel: () => undefined };
    }
  }

  currentRevision(): number {
    return this.machine.store.revision;
  }

  raftTerm(): number {
    return this.node?.status().term ?? 0;
  }

  async leaseGrant(req: LeaseGrantRequest): Promise<LeaseGrantResponse> {
    return (await this.propose({ mvcc: { leaseGrant: { id: req.id, ttlSeconds: Math.max(1, req.ttlSeconds) } } })) as LeaseGrantResponse;
  }

  async leaseRevoke(req: LeaseRevokeRequest): Promise<{ header: ResponseHeader }> {
    return (await this.propose({ mvcc: { leaseRevoke: req } })) as { header: ResponseHeader };
  }

  async leaseKeepAlive(id: number): Promise<{ ttlSeconds: number }> {
    return (await this.propose({ leaseRenew: { id } })) as { ttlSeconds: number };
  }

  async leaseTimeToLive(id: number, keys: boolean): Promise<LeaseTimeToLive> {
    await this.barrier(false);
    const info = this.machine.store.lease(id);
    if (!info) throw new MvccError("lease-not-found", "requested lease not found");
    const remaining = this.lessor.remaining(id) ?? info.ttlSeconds;
    return { id, ttlSeconds: remaining, grantedTtlSeconds: info.ttlSeconds, keys: keys ? info.keys : [] };
  }

  async leaseList(): Promise<number[]> {
    return this.machine.store.leases().map((l) => l.id);
  }

  async members(): Promise<Member[]> {
    const { voters, learners } = this.node!.membership();
    const member = (name: string, isLearner: boolean): Member => ({
      id: memberIdOf(name),
      name,
      peerURLs: [`http://${this.o.peers.get(name) ?? ""}`],
      clientURLs: this.o.clientUrls?.get(name) ? [`http://${this.o.clientUrls.get(name)}`] : [],
      isLearner,
    });
    return [...voters.map((v) => member(v, false)), ...learners.map((l) => member(l, true))];
  }

  /**
   * Not offered through the etcd API: adding an unreachable learner this way made the etcd listener refuse streams
   * in the fuzz test (to investigate); `flotilla master --join` adds a master as a learner instead.
   */
  async memberAdd(): Promise<{ member: Member; members: Member[] }> {
    throw new UnsupportedError("adding members through the etcd API is not supported yet; start the new master with 'flotilla master --join'");
  }

  async memberRemove(id: string): Promise<Member[]> {
    await this.removeMember(this.memberName(id));
    return (await this.members()).filter((m) => m.id !== id);
  }

  /**
   * The leader promotes a learner by itself as soon as it has caught up, so a learner still listed is one that has
   * not: etcd's "not in sync" error, unless this is the leader and it caught up just now.
   */
  async memberPromote(id: string): Promise<Member[]> {
    const name = this.memberName(id);
    if (this.node!.membership().voters.includes(name)) return this.members();
    if (!this.node!.caughtUp(name)) throw new LearnerNotReadyError();
    await this.node!.promote(name);
    return this.members();
  }

  private memberName(id: string): string {
    const { voters, learners } = this.node!.membership();
    const name = [...voters, ...learners].find((n) => memberIdOf(n) === String(id));
    if (!name) throw new MemberNotFoundError(BigInt(id || "0").toString(16));
    return name;
  }

  async status(): Promise<MemberStatus> {
    const s = this.node!.status();
    return {
      version: "3.4.0",
      dbSize: this.machine.store.indexSize,
      leader: s.lead === NONE ? "0" : memberIdOf(s.lead),
      raftIndex: s.commit,
      raftTerm: s.term,
      raftAppliedIndex: s.applied,
      isLearner: this.node!.membership().learners.includes(this.o.id),
    };
  }

  /** The masters, for `flotilla members list`. */
  async memberList(): Promise<{ name: string; raftAddress: string; isLearner: boolean; isLeader: boolean }[]> {
    const { voters, learners } = this.node!.membership();
    const lead = this.node!.status().lead;
    const entry = (name: string, isLearner: boolean) => ({ name, raftAddress: this.o.peers.get(name) ?? "", isLearner, isLeader: name === lead });
    return [...voters.map((v) => entry(v, false)), ...learners.map((l) => entry(l, true))];
  }

  /** Removes a master from the Raft group (proposed through Raft; a follower forwards it to the leader). */
  async removeMember(name: string): Promise<void> {
    const { voters, learners } = this.node!.membership();
    if (![...voters, ...learners].includes(name)) throw new MvccError("invalid", `"${name}" is not a member`);
    await this.node!.remove(name);
  }

  /** A consistent image of the state machine as of this master's last applied entry (after a read barrier). */
  async snapshotBytes(): Promise<Uint8Array> {
    await this.barrier(false);
    return this.machine.snapshot();
  }

  async *snapshot(): AsyncIterable<Uint8Array> {
    yield await this.machine.snapshot();
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    this.lessor.follow();
    await this.node?.stop();
    await this.transport?.close();
    this.server?.forceShutdown();
    await this.storage?.close();
  }
}

export { RaftError };

/** The bytes a request carries (keys, values, range ends), as etcd measures a request against its limit. */
function requestBytes(command: MvccCommand): number {
  const op = (o: RequestOpLike): number => {
    if ("put" in o) return o.put.key.length + o.put.value.length;
    if ("deleteRange" in o) return o.deleteRange.key.length + (o.deleteRange.rangeEnd?.length ?? 0);
    if ("range" in o) return o.range.key.length + (o.range.rangeEnd?.length ?? 0);
    if ("txn" in o) return txnBytes(o.txn);
    return 0;
  };
  const txnBytes = (t: TxnRequest): number =>
    [...t.success, ...t.failure].reduce((n, o) => n + op(o), 0) +
    t.compare.reduce((n, c) => n + c.key.length + (c.value instanceof Uint8Array ? c.value.length : 8), 0);
  return op(command as RequestOpLike);
}

type RequestOpLike = TxnRequest["success"][number] | { compact: unknown } | { leaseGrant: unknown } | { leaseRevoke: unknown };

