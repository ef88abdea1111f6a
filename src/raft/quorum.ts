// Majority arithmetic over one set of voters (etcd-io/raft's quorum/majority.go, without joint configurations).
// Pure functions: the caller supplies each voter's match index or vote. Learners must not be passed in, since
// they never count towards a quorum.
//
// Invariant: a quorum is any ⌊n/2⌋+1 voters, so any two quorums intersect (Raft §5.2, §5.4).

export type VoteResult = "won" | "lost" | "pending";

/** The number of voters that make a majority of n. */
export function quorumSize(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * The largest index that a majority of voters have matched: sort the match indexes in descending order and pick
 * the one at the quorum position. With no voters nothing can be committed, so 0.
 */
export function committedIndex(voters: Iterable<string>, matchOf: (id: string) => number): number {
  const matches = [...voters].map(matchOf).sort((a, b) => b - a);
  if (matches.length === 0) return 0;
  return matches[quorumSize(matches.length) - 1];
}

/**
 * The outcome of an election (or any yes/no poll, such as read-index acks or CheckQuorum's activity) among voters.
 * `voteOf` returns undefined for a voter that has not answered. With no voters the result is "won", as in etcd,
 * so that an empty configuration never blocks.
 */
export function voteResult(voters: Iterable<string>, voteOf: (id: string) => boolean | undefined): VoteResult {
  let granted = 0;
  let missing = 0;
  let total = 0;
  for (const id of voters) {
    total++;
    const vote = voteOf(id);
    if (vote === undefined) missing++;
    else if (vote) granted++;
  }
  if (total === 0) return "won";
  const q = quorumSize(total);
  if (granted >= q) return "won";
  // The missing votes could still make a majority: keep waiting.
  if (granted + missing >= q) return "pending";
  return "lost";
}
