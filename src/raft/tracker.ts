// The leader's (and every node's) view of the configuration: voters, learners and a Progress per member, plus the
// votes of the current election (etcd-io/raft's tracker/tracker.go without joint consensus: membership changes
// one server at a time, Raft §4.1 of Ongaro's thesis).
//
// Invariants: voters ∩ learners = ∅; progress has exactly the members voters ∪ learners; progress.isLearner
// agrees with membership in learners; only voters' votes and matches count.
import { committedIndex, voteResult, type VoteResult } from "./quorum.js";
import { Progress } from "./progress.js";
import type { ConfState, NodeId } from "./types.js";

export class ProgressTracker {
  readonly voters = new Set<NodeId>();
  readonly learners = new Set<NodeId>();
  readonly progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();

  constructor(
    readonly maxInflight: number,
    readonly maxInflightBytes: number,
  ) {}

  /** Replaces the configuration (at start or from a snapshot); every member's progress starts over from next. */
  resetConfig(cs: ConfState, next: number): void {
    this.voters.clear();
    this.learners.clear();
    this.progress.clear();
    for (const id of cs.voters) this.addMember(id, false, next);
    for (const id of cs.learners) {
      if (this.voters.has(id)) throw new Error(`conf state: ${id} is both voter and learner`);
      this.addMember(id, true, next);
    }
  }

  addMember(id: NodeId, isLearner: boolean, next: number): Progress {
    (isLearner ? this.learners : this.voters).add(id);
    const pr = this.newProgress(next, isLearner);
    this.progress.set(id, pr);
    return pr;
  }

  newProgress(next: number, isLearner: boolean): Progress {
    return new Progress({ next, isLearner, maxInflight: this.maxInflight, maxInflightBytes: this.maxInflightBytes });
  }

  promote(id: NodeId): void {
    const pr = this.progress.get(id);
    if (!pr || !this.learners.has(id)) throw new Error(`promote: ${id} is not a learner`);
    this.learners.delete(id);
    this.voters.add(id);
    pr.isLearner = false;
  }

  remove(id: NodeId): void {
    this.voters.delete(id);
    this.learners.delete(id);
    this.progress.delete(id);
    this.votes.delete(id);
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() };
  }

  /** Member ids in a stable order, so that message order (and hence tests) is deterministic. */
  ids(): NodeId[] {
    return [...this.progress.keys()].sort();
  }

  isSingleton(): boolean {
    return this.voters.size === 1;
  }

  /** The highest index replicated on a majority of voters. */
  committed(): number {
    return committedIndex(this.voters, (id) => this.progress.get(id)?.match ?? 0);
  }

  /** CheckQuorum: whether a majority of voters were recently active. */
  quorumActive(): boolean {
    return voteResult(this.voters, (id) => this.progress.get(id)?.recentActive === true) === "won";
  }

  /** A poll among voters where `acks` are the yes votes (read-index confirmation). */
  quorumAcked(acks: ReadonlySet<NodeId>): boolean {
    return voteResult(this.voters, (id) => (acks.has(id) ? true : undefined)) === "won";
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote; only the first answer of each node in an election counts. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    return { granted, rejected, result: voteResult(this.voters, (id) => this.votes.get(id)) };
  }
}
