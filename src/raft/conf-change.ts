// Membership changes, one server at a time (Raft thesis §4.1, etcd's single-step ConfChange): their encoding as
// entry data, validation, and application to the ProgressTracker.
//
// Invariant: a change that is invalid against the current configuration is a no-op when applied, so every node
// applying the same committed entry reaches the same configuration.
import type { ProgressTracker } from "./tracker.js";
import { RaftError, type ConfChange, type ConfChangeType } from "./types.js";

const TYPES: readonly ConfChangeType[] = ["add-learner", "promote", "remove"];

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ type: cc.type, node: cc.node, context: cc.context }));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(data));
  } catch {
    throw new RaftError("conf change: not JSON", "corrupt");
  }
  if (typeof parsed !== "object" || parsed === null) throw new RaftError("conf change: not an object", "corrupt");
  const { type, node, context } = parsed as Record<string, unknown>;
  if (!TYPES.includes(type as ConfChangeType) || typeof node !== "string" || node === "" || typeof context !== "string") {
    throw new RaftError("conf change: bad fields", "corrupt");
  }
  return { type: type as ConfChangeType, node, context };
}

/** Why the change cannot apply to the configuration in `trk`, or undefined when it can. */
export function confChangeProblem(trk: ProgressTracker, cc: ConfChange): string | undefined {
  switch (cc.type) {
    case "add-learner":
      return trk.progress.has(cc.node) ? `${cc.node} is already a member` : undefined;
    case "promote":
      return trk.learners.has(cc.node) ? undefined : `${cc.node} is not a learner`;
    case "remove":
      if (!trk.progress.has(cc.node)) return `${cc.node} is not a member`;
      if (trk.voters.has(cc.node) && trk.voters.size === 1) return "cannot remove the last voter";
      return undefined;
  }
}

/** Applies a valid change; new members start probing from `next` and count as active (so CheckQuorum waits). */
export function applyToTracker(trk: ProgressTracker, cc: ConfChange, next: number): void {
  switch (cc.type) {
    case "add-learner":
      trk.addMember(cc.node, true, next).recentActive = true;
      return;
    case "promote":
      trk.promote(cc.node);
      return;
    case "remove":
      trk.remove(cc.node);
      return;
  }
}
