// The bounded window of append messages a leader has in flight to one follower in replicate state
// (etcd-io/raft's tracker/inflights.go). Each entry records the last log index the message carried and its
// payload bytes; an ack for index i frees every message up to i.
//
// Invariants: recorded indexes are strictly increasing; count ≤ size; the window is full when it holds `size`
// messages or at least `maxBytes` bytes.

interface Inflight {
  index: number;
  bytes: number;
}

export class Inflights {
  private queue: Inflight[] = [];
  private head = 0;
  private totalBytes = 0;

  /** size: at most this many messages in flight; maxBytes: at most this many payload bytes (0 = unlimited). */
  constructor(
    readonly size: number,
    readonly maxBytes = 0,
  ) {
    if (size <= 0) throw new Error(`inflights: size must be positive, got ${size}`);
  }

  /** Records a message whose last entry is `index`. Adding to a full window is a bug in the caller. */
  add(index: number, bytes: number): void {
    if (this.full()) throw new Error("inflights: add to a full window");
    const last = this.queue[this.queue.length - 1];
    if (this.count() > 0 && last.index >= index) {
      throw new Error(`inflights: index ${index} not above the last in flight ${last.index}`);
    }
    this.queue.push({ index, bytes });
    this.totalBytes += bytes;
  }

  /** Frees every message whose last index is ≤ to (the follower acknowledged up to `to`). */
  freeLE(to: number): void {
    while (this.head < this.queue.length && this.queue[this.head].index <= to) {
      this.totalBytes -= this.queue[this.head].bytes;
      this.head++;
    }
    // Drop the consumed prefix once it dominates, so the array does not grow without bound.
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** Frees the oldest message: a heartbeat answer shows the follower is alive, so a lost append must not stall us. */
  freeFirstOne(): void {
    if (this.count() > 0) this.freeLE(this.queue[this.head].index);
  }

  full(): boolean {
    return this.count() >= this.size || (this.maxBytes > 0 && this.totalBytes >= this.maxBytes);
  }

  count(): number {
    return this.queue.length - this.head;
  }

  bytes(): number {
    return this.totalBytes;
  }

  reset(): void {
    this.queue = [];
    this.head = 0;
    this.totalBytes = 0;
  }
}
