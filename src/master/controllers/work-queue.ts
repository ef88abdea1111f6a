// A work queue of keys: a key queued many times is processed once; a key being processed is never processed
// concurrently; failures retry with per-key exponential back-off.
export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class WorkQueue {
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  /** Keys re-queued while being processed; they run again once the current run ends. */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = false;
  private wake?: () => void;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly process: (key: string) => Promise<void>,
    private readonly onError: (key: string, error: unknown) => void,
    options: WorkQueueOptions = {},
  ) {
    this.baseDelayMs = options.baseDelayMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
  }

  add(key: string): void {
    if (!this.running) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    this.queued.add(key);
    this.wake?.();
  }

  addAfter(key: string, delayMs: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.add(key);
    }, delayMs);
    this.timers.add(timer);
  }

  start(): void {
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queued.clear();
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const next = this.queued.values().next();
      if (next.done) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      const key = next.value;
      this.queued.delete(key);
      this.active.add(key);
      void this.run(key);
    }
  }

  private async run(key: string): Promise<void> {
    try {
      await this.process(key);
      this.failures.delete(key);
    } catch (e) {
      const failures = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, failures);
      this.onError(key, e);
      this.addAfter(key, Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (failures - 1)));
    } finally {
      this.active.delete(key);
      if (this.dirty.delete(key)) this.add(key);
    }
  }
}
