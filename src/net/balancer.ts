// Backend choice for one service port of the userspace proxy: round-robin or least-connections, with optional
// ClientIP session affinity. Pure and synchronous (no sockets, no clock) so every choice is unit-testable; the proxy
// reports connections opening and closing, and retries with the backends it already tried excluded.
//
// Invariants:
// - pick() only returns a backend of the current list that is not in `tried`; undefined when none is left.
// - Round-robin walks the list in order, one step per choice, so N choices over a stable list of N backends hit each
//   once. The cursor survives list changes (taken modulo the new length).
// - Least-connections picks the backend with the fewest open connections; ties go to the first one at or after the
//   round-robin cursor, so equal loads still rotate.
// - A ClientIP affinity entry points at a backend of the current list: setBackends() drops entries for backends that
//   left. The table is bounded (least recently used entries go first).
// - Connection counts are kept per backend key even after the backend leaves the list (its connections drain), so a
//   backend that comes back starts from its true load.
import type { Backend } from "./types.js";

export type BalanceMode = "round-robin" | "least-connections";
export type SessionAffinity = "None" | "ClientIP";

export interface BalancerOptions {
  mode: BalanceMode;
  affinity: SessionAffinity;
  /** Client addresses remembered for ClientIP affinity before the least recently used are forgotten. */
  maxAffinityEntries?: number;
}

const DEFAULT_MAX_AFFINITY_ENTRIES = 10_000;

/** Identifies a backend across syncs (the same address:port is the same backend, whatever pod it is now). */
export function backendKey(backend: Pick<Backend, "address" | "port">): string {
  return backend.address.includes(":") ? `[${backend.address}]:${backend.port}` : `${backend.address}:${backend.port}`;
}

export class Balancer {
  private readonly mode: BalanceMode;
  private affinity: SessionAffinity;
  private readonly maxAffinityEntries: number;
  private backends: Backend[] = [];
  private byKey = new Map<string, Backend>();
  private cursor = 0;
  /** Open connections per backend key; entries at 0 are deleted. */
  private readonly open = new Map<string, number>();
  /** Client IP → backend key, in least-recently-used-first order (Map keeps insertion order). */
  private readonly sticky = new Map<string, string>();

  constructor(options: BalancerOptions) {
    this.mode = options.mode;
    this.affinity = options.affinity;
    this.maxAffinityEntries = Math.max(1, options.maxAffinityEntries ?? DEFAULT_MAX_AFFINITY_ENTRIES);
  }

  /** Replaces the backend list (duplicates by address:port are dropped); takes effect for the next pick. */
  setBackends(backends: readonly Backend[]): void {
    const byKey = new Map<string, Backend>();
    for (const b of backends) {
      const key = backendKey(b);
      if (!byKey.has(key)) byKey.set(key, b);
    }
    this.byKey = byKey;
    this.backends = [...byKey.values()];
    this.cursor = this.backends.length === 0 ? 0 : this.cursor % this.backends.length;
    for (const [client, key] of this.sticky) if (!byKey.has(key)) this.sticky.delete(client);
  }

  setAffinity(affinity: SessionAffinity): void {
    if (affinity === "None") this.sticky.clear();
    this.affinity = affinity;
  }

  get size(): number {
    return this.backends.length;
  }

  /** How many backends of the current list are not in `tried`: whether a failed attempt has another to go to. */
  untried(tried: ReadonlySet<string>): number {
    let n = 0;
    for (const key of this.byKey.keys()) if (!tried.has(key)) n++;
    return n;
  }

  /** Whether `key` (see backendKey) is in the current list. */
  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /**
   * The backend for a new connection from `clientIp`, skipping the keys in `tried`; undefined when none is left.
   * With ClientIP affinity the client's backend is reused while it is in the list and not tried, else a new one is
   * chosen and remembered.
   */
  pick(clientIp: string, tried: ReadonlySet<string> = new Set()): Backend | undefined {
    if (this.affinity === "ClientIP") {
      const key = this.sticky.get(clientIp);
      if (key !== undefined && !tried.has(key)) {
        const backend = this.byKey.get(key);
        if (backend !== undefined) {
          this.remember(clientIp, key);
          return backend;
        }
      }
    }
    const chosen = this.mode === "least-connections" ? this.leastConnections(tried) : this.roundRobin(tried);
    if (chosen !== undefined && this.affinity === "ClientIP") this.remember(clientIp, backendKey(chosen));
    return chosen;
  }

  /** Counts a connection to `key` as open (call when a connection attempt starts). */
  connectionOpened(key: string): void {
    this.open.set(key, (this.open.get(key) ?? 0) + 1);
  }

  /** Counts a connection to `key` as closed (exactly once per connectionOpened). */
  connectionClosed(key: string): void {
    const n = (this.open.get(key) ?? 0) - 1;
    if (n > 0) this.open.set(key, n);
    else this.open.delete(key);
  }

  activeConnections(key: string): number {
    return this.open.get(key) ?? 0;
  }

  private roundRobin(tried: ReadonlySet<string>): Backend | undefined {
    const n = this.backends.length;
    for (let i = 0; i < n; i++) {
      const index = (this.cursor + i) % n;
      const backend = this.backends[index]!;
      if (tried.has(backendKey(backend))) continue;
      this.cursor = (index + 1) % n;
      return backend;
    }
    return undefined;
  }

  private leastConnections(tried: ReadonlySet<string>): Backend | undefined {
    const n = this.backends.length;
    let best: { index: number; load: number } | undefined;
    for (let i = 0; i < n; i++) {
      const index = (this.cursor + i) % n;
      const key = backendKey(this.backends[index]!);
      if (tried.has(key)) continue;
      const load = this.activeConnections(key);
      if (best === undefined || load < best.load) best = { index, load };
    }
    if (best === undefined) return undefined;
    this.cursor = (best.index + 1) % n;
    return this.backends[best.index];
  }

  private remember(clientIp: string, key: string): void {
    this.sticky.delete(clientIp);
    this.sticky.set(clientIp, key);
    if (this.sticky.size > this.maxAffinityEntries) {
      const oldest = this.sticky.keys().next().value;
      if (oldest !== undefined) this.sticky.delete(oldest);
    }
  }
}
