// The Raft StateMachine over an MvccStore: each committed entry carries an encoded MvccCommand (codec.ts).
// A rejected command (failed lease lookup, compacted revision, duplicate key...) is a normal, replicated outcome:
// every member rejects it identically, so it comes back as a value, {error: {code, message}}, never a throw.
// Only a bug (a non-MvccError) propagates.
import type { StateMachine } from "../../raft/storage.js";
import { decodeCommand } from "./codec.js";
import { MvccStore } from "./mvcc-store.js";
import type { MvccErrorCode, MvccResult } from "./types.js";
import { MvccError } from "./types.js";

export interface MvccApplyError {
  error: { code: MvccErrorCode; message: string };
}

export type MvccApplyResult = MvccResult | MvccApplyError;

export function isApplyError(r: unknown): r is MvccApplyError {
  return typeof r === "object" && r !== null && "error" in r;
}

export class MvccStateMachine implements StateMachine {
  /** Index of the last entry applied (0 before any); restored snapshots do not carry it, the Raft layer does. */
  lastApplied = 0;

  constructor(public store: MvccStore = new MvccStore()) {}

  apply(entry: { index: number; term: number; data: Uint8Array }): MvccApplyResult | undefined {
    this.lastApplied = entry.index;
    // A new leader's empty entry carries no command.
    if (entry.data.length === 0) return undefined;
    try {
      return this.store.apply(decodeCommand(entry.data));
    } catch (err) {
      if (err instanceof MvccError) return { error: { code: err.code, message: err.message } };
      throw err;
    }
  }

  async snapshot(): Promise<Uint8Array> {
    return this.store.snapshot();
  }

  async restore(data: Uint8Array): Promise<void> {
    // In place, so watchers registered on the store survive (and catch up) across a snapshot install.
    this.store.restore(data);
  }
}
