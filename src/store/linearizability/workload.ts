// The Jepsen-style workload: concurrent clients doing random put / get / cas on a few keys through the etcd v3 API,
// each recording call and return times and outputs into one history for the linearizability checker.
// Roles: one etcd3 client per worker, pinned to one master's etcd endpoint (pinning spreads load and exercises
// followers' forwarding and ReadIndex); retries and circuit breakers are off, so one call is one request.
// Invariants: every write is recorded, and any error or timeout makes it ambiguous (a request can reach the
// leader and commit even when the answer is lost); failed gets are dropped (they constrain nothing); each written
// value is unique, so a read names the one write it saw. Times are process.hrtime.bigint() nanoseconds since start.
import { Etcd3 } from "etcd3";
import { noop } from "cockatiel";
import type { Operation, Value } from "./history.js";

export interface WorkloadOptions {
  /** etcd endpoints (host:port); worker i is pinned to endpoints[i % length]. */
  endpoints: string[];
  clients?: number;
  keys?: number;
  /** Per-request deadline; a request that passes it is ambiguous. */
  timeoutMs?: number;
  /** Pause after an error, so a worker pinned to a dead master does not pile up ambiguous writes. */
  errorBackoffMs?: number;
  keyPrefix?: string;
  /** Serve gets from the pinned member's local state (possibly stale): only to show the checker catches it. */
  serializableReads?: boolean;
}

export interface WorkloadStats {
  ops: number;
  ok: number;
  /** Completed with a definite negative answer (a cas whose comparison failed). */
  failed: number;
  /** Writes with an unknown outcome. */
  ambiguous: number;
  /** Gets that errored (dropped from the history). */
  droppedReads: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Workload {
  readonly history: Operation[] = [];
  readonly errors = new Map<string, number>();
  private readonly start = process.hrtime.bigint();
  private running = false;
  private workers: Promise<void>[] = [];
  private readonly clients: Etcd3[] = [];
  private droppedReads = 0;

  constructor(private readonly o: WorkloadOptions) {}

  now(): number {
    return Number(process.hrtime.bigint() - this.start);
  }

  begin(): void {
    this.running = true;
    const n = this.o.clients ?? 6;
    for (let i = 0; i < n; i++) {
      const timeoutMs = this.o.timeoutMs ?? 2000;
      const client = new Etcd3({
        hosts: `http://${this.o.endpoints[i % this.o.endpoints.length]}`,
        dialTimeout: timeoutMs,
        defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
        faultHandling: { host: () => noop, global: noop },
      });
      this.clients.push(client);
      this.workers.push(this.worker(i, client));
    }
  }

  /** Stops issuing operations and waits for those in flight to finish (each within its deadline). */
  async end(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
    for (const c of this.clients) c.close();
  }

  stats(): WorkloadStats {
    const s: WorkloadStats = { ops: this.history.length + this.droppedReads, ok: 0, failed: 0, ambiguous: 0, droppedReads: this.droppedReads };
    for (const op of this.history) {
      if (op.output === undefined) s.ambiguous++;
      else if (op.op === "cas" && !op.output.ok) s.failed++;
      else s.ok++;
    }
    return s;
  }

  private async worker(id: number, client: Etcd3): Promise<void> {
    const keys = this.o.keys ?? 3;
    // The last value this worker saw per key: a cas usually expects it, so many cas succeed.
    const seen = new Map<string, string>();
    let seq = 0;
    while (this.running) {
      const key = `${this.o.keyPrefix ?? "/jepsen/"}${Math.floor(Math.random() * keys)}`;
      const r = Math.random();
      const value = `${id}-${seq++}`;
      const op: Operation = r < 0.4 ? { client: id, key, op: "get", input: {}, call: 0 }
        : r < 0.7 ? { client: id, key, op: "put", input: { value }, call: 0 }
        : { client: id, key, op: "cas", input: { expect: seen.get(key) ?? `${id}-${seq - 2}`, value }, call: 0 };
      const ok = await this.invoke(client, op);
      if (ok && op.op === "get" && typeof op.output?.value === "string") seen.set(key, op.output.value);
      if (ok && op.op !== "get" && op.output?.ok) seen.set(key, value);
      if (!ok) await sleep(this.o.errorBackoffMs ?? 500);
    }
  }

  /** Runs one operation and records it; false when it errored. */
  private async invoke(client: Etcd3, op: Operation): Promise<boolean> {
    op.call = this.now();
    try {
      op.output = await request(client, op, this.o.serializableReads ?? false);
      op.return = this.now();
      this.history.push(op);
      return true;
    } catch (err) {
      const name = err instanceof Error ? err.constructor.name : "unknown";
      this.errors.set(name, (this.errors.get(name) ?? 0) + 1);
      if (op.op === "get") this.droppedReads++;
      else this.history.push({ ...op, output: undefined, return: Infinity });
      return false;
    }
  }
}

async function request(client: Etcd3, op: Operation, serializable: boolean): Promise<Operation["output"]> {
  switch (op.op) {
    case "get": {
      // A linearizable range (serializable is false by default): served through the leader's ReadIndex.
      const value: Value = await client.get(op.key).serializable(serializable).string();
      return { value };
    }
    case "put":
      await client.put(op.key).value(op.input.value!);
      return { ok: true };
    case "cas": {
      const res = await client.if(op.key, "Value", "==", op.input.expect!).then(client.put(op.key).value(op.input.value!)).commit();
      return { ok: res.succeeded };
    }
  }
}
