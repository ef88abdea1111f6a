// A push-to-pull bridge: a producer (an event-emitting stream) pushes items, one consumer iterates them. When the
// consumer falls behind by `highWater` items the producer is paused, and resumed once the queue has drained, so
// following a chatty container's logs over a slow client does not buffer without bound.
export class ChunkQueue<T> {
  private readonly items: T[] = [];
  private finished = false;
  private failure: unknown;
  private paused = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly highWater: number,
    private readonly pause: () => void,
    private readonly resume: () => void,
  ) {}

  push(item: T): void {
    if (this.finished) return;
    this.items.push(item);
    if (!this.paused && this.items.length >= this.highWater) {
      this.paused = true;
      this.pause();
    }
    this.notify();
  }

  /** Ends the iteration once the queued items are consumed; with an error, the iteration then throws it. */
  end(error?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    this.notify();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      if (this.items.length > 0) {
        const [item] = this.items.splice(0, 1);
        if (this.paused && this.items.length === 0) {
          this.paused = false;
          this.resume();
        }
        yield item;
        continue;
      }
      if (this.finished) {
        if (this.failure !== undefined) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
