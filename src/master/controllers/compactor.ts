// Keeps the store's history bounded, as the Kubernetes API server does for etcd: every interval the leader
// compacts away revisions older than the newest `retainRevisions`. Without it, heartbeats and status updates grow
// the MVCC history (and a replicated store's snapshots) for ever. Watches older than the window get "compacted"
// and list again, which the informers already do.
import type { Logger } from "../../common/logger.js";
import type { Store } from "../../store/index.js";

export interface CompactorOptions {
  intervalMs: number;
  retainRevisions: number;
}

export class Compactor {
  private timer?: NodeJS.Timeout;
  private compactedTo = 0;
  private running = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly options: CompactorOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.compact(), this.options.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async compact(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const target = (await this.store.revision()) - this.options.retainRevisions;
      if (target <= this.compactedTo) return;
      await this.store.compact(target);
      this.compactedTo = target;
      this.log.debug({ revision: target }, "store history compacted");
    } catch (e) {
      // Another master compacted further, or there is no quorum right now: try again next interval.
      this.log.debug({ err: e }, "store compaction skipped");
    } finally {
      this.running = false;
    }
  }
}
