// A leader's view of one peer's log (etcd-io/raft's tracker/progress.go).
//
// States: "probe" — we do not know where the follower's log ends, so send one append at a time and wait for the
// answer; "replicate" — the follower is known to match up to `match`, so stream appends optimistically, bounded by
// `inflights`; "snapshot" — the entries it needs are compacted, so a snapshot is on its way and nothing else is sent.
//
// Invariants: 0 ≤ match < next; in snapshot state pendingSnapshot > 0.
import { Inflights } from "./inflights.js";

export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  /** The highest index known to be replicated on the peer. */
  match = 0;
  /** The index of the next entry to send. */
  next: number;
  state: ProgressState = "probe";
  /** Probe state: an append is outstanding, so wait for its answer (or a heartbeat answer) before sending more. */
  probeSent = false;
  /** Snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Whether we heard from the peer since the last CheckQuorum round (Raft §6.2's leader lease, etcd CheckQuorum). */
  recentActive = false;
  isLearner: boolean;
  readonly inflights: Inflights;

  constructor(opts: { next: number; isLearner: boolean; maxInflight: number; maxInflightBytes: number }) {
    this.next = opts.next;
    this.isLearner = opts.isLearner;
    this.inflights = new Inflights(opts.maxInflight, opts.maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** Back to one-at-a-time probing, from the entry after what we know (or after the snapshot just sent). */
  becomeProbe(): void {
    if (this.state === "snapshot") {
      const pending = this.pendingSnapshot;
      this.resetState("probe");
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState("probe");
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState("replicate");
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState("snapshot");
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
  }

  /** Records that an append with `entries` entries (of `bytes` payload) was sent from `next`. */
  sentEntries(entries: number, bytes: number): void {
    if (this.state === "replicate") {
      if (entries > 0) {
        this.next += entries;
        this.inflights.add(this.next - 1, bytes);
      }
    } else if (this.state === "probe") {
      // One probe at a time: wait for its answer before sending another.
      this.probeSent = true;
    } else {
      throw new Error("progress: sending entries in snapshot state");
    }
  }

  /** The peer answered something (a heartbeat or an append): probing may resume. */
  probeAcked(): void {
    this.probeSent = false;
  }

  /**
   * An append was acknowledged up to n. Returns whether match moved (a stale or duplicate ack does not); next never
   * goes backwards here.
   */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeAcked();
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * An append at index `rejected` was rejected; `matchHint` is where the follower suggests retrying from (etcd's
   * fast back-up). Returns false when the rejection is stale (it is not about the append we are waiting on).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      // Appends beyond match are in flight; a rejection at or below match is a stale duplicate.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the rejection of the last probe (sent at next-1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeAcked();
    return true;
  }

  /** Whether the leader should hold back appends to this peer (it may still send heartbeats). */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }
}
