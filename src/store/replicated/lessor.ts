// Lease deadlines. Every member tracks them from replicated grants and renewals; only the leader acts, by
// proposing a revoke when one passes. A new leader gives every lease a fresh TTL, as etcd does, so that a leader
// change never expires leases whose keep-alives went to the old leader.
export class Lessor {
  private readonly deadlines = new Map<number, number>();
  private readonly revoking = new Set<number>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ttlOf: (id: number) => number | undefined,
    private readonly revoke: (id: number) => Promise<unknown>,
    private readonly now: () => number = Date.now,
  ) {}

  renewed(id: number): void {
    const ttl = this.ttlOf(id);
    if (ttl === undefined) this.deadlines.delete(id);
    else this.deadlines.set(id, this.now() + ttl * 1000);
  }

  revoked(id: number): void {
    this.deadlines.delete(id);
    this.revoking.delete(id);
  }

  /** Remaining whole seconds, or undefined for an unknown lease. */
  remaining(id: number): number | undefined {
    const deadline = this.deadlines.get(id);
    return deadline === undefined ? undefined : Math.max(0, Math.ceil((deadline - this.now()) / 1000));
  }

  /** Starts checking expiry (on becoming leader), with a fresh TTL for every lease. */
  lead(ids: number[]): void {
    for (const id of ids) this.renewed(id);
    clearInterval(this.timer);
    this.timer = setInterval(() => this.expire(), 250);
    this.timer.unref();
  }

  follow(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.revoking.clear();
  }

  private expire(): void {
    const now = this.now();
    for (const [id, deadline] of this.deadlines) {
      if (deadline > now || this.revoking.has(id)) continue;
      this.revoking.add(id);
      // A failed revoke (lost leadership, no quorum) is tried again on the next pass.
      this.revoke(id).catch(() => this.revoking.delete(id));
    }
  }
}
