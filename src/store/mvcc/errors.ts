// Errors specific to the MVCC implementation that carry more than MvccError's code and message.
import { MvccError } from "./types.js";

/** A read or watch below the compaction point. `compactRevision` tells a watcher where history now starts. */
export class MvccCompactedError extends MvccError {
  constructor(
    readonly requested: number,
    readonly compactRevision: number,
  ) {
    super("compacted", `required revision ${requested} has been compacted (compact revision ${compactRevision})`);
  }
}

export class MvccFutureRevisionError extends MvccError {
  constructor(
    readonly requested: number,
    readonly currentRevision: number,
  ) {
    super("future-revision", `required revision ${requested} is a future revision (current ${currentRevision})`);
  }
}
