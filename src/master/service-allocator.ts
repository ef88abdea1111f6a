// Hands out services' virtual IPs (from the service range) and NodePorts (30000-32767), each unique in the cluster.
// Every allocation is its own key, /registry/allocations/<kind>/<value>, holding its owner ("namespace/name"),
// created by compare-and-swap on "must not exist": two masters (or two requests) racing for the same value cannot
// both win, and the loser moves on to another free value. Deleting a service deletes its keys.
import { invalidField } from "./errors.js";
import type { Store } from "../store/index.js";
import { NODE_PORT_RANGE } from "../api/validation.js";

const IP_PREFIX = "/registry/allocations/service-ips/";
const NODE_PORT_PREFIX = "/registry/allocations/node-ports/";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An IPv4 CIDR such as 10.96.0.0/16, as the numbers it covers (without its network and broadcast addresses). */
export interface ServiceRange {
  cidr: string;
  first: number;
  last: number;
}

export function parseServiceRange(cidr: string): ServiceRange {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const bits = m ? Number(m[5]) : -1;
  if (!m || octets.some((o) => o > 255) || bits < 8 || bits > 30) {
    throw new Error(`--service-cidr: "${cidr}" must be an IPv4 CIDR with a prefix of /8 to /30, such as 10.96.0.0/16`);
  }
  const base = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const size = 2 ** (32 - bits);
  const network = base - (base % size);
  return { cidr, first: network + 1, last: network + size - 2 };
}

export function ipToNumber(ip: string): number {
  return ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

export function numberToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

/** One allocation key as stored, for the repair pass (controllers/allocation-repair.ts). */
export interface Allocation {
  pool: "ip" | "nodePort";
  /** The address or port, as a service's spec holds it. */
  value: string;
  /** "namespace/name" of the service that claimed it. */
  owner: string;
  key: string;
  modRevision: number;
}

interface Pool {
  prefix: string;
  first: number;
  last: number;
  /** How a value appears in the key and in errors. */
  show(n: number): string;
  /** The field a user's requested value came from, for errors. */
  field: string;
  exhausted: string;
}

export class ServiceAllocator {
  private readonly ips: Pool;
  private readonly nodePorts: Pool;

  constructor(
    private readonly store: Store,
    readonly range: ServiceRange,
    /** Random source in [0, 1), for where a search for a free value starts (tests pass a seeded one). */
    private readonly random: () => number = Math.random,
  ) {
    this.ips = {
      prefix: IP_PREFIX,
      first: range.first,
      last: range.last,
      show: numberToIp,
      field: "spec.clusterIp",
      exhausted: `the service range ${range.cidr} is exhausted: delete a service or choose a larger --service-cidr`,
    };
    this.nodePorts = {
      prefix: NODE_PORT_PREFIX,
      first: NODE_PORT_RANGE.min,
      last: NODE_PORT_RANGE.max,
      show: String,
      field: "nodePort",
      exhausted: `every NodePort (${NODE_PORT_RANGE.min}-${NODE_PORT_RANGE.max}) is allocated: delete a NodePort service`,
    };
  }

  /** The requested address (which must be in the range and free), or a free one. */
  allocateIp(owner: string, requested?: string): Promise<string> {
    if (requested) {
      const n = ipToNumber(requested);
      if (n < this.range.first || n > this.range.last) {
        return Promise.reject(invalidField("spec.clusterIp", `${requested} is outside the service range ${this.range.cidr}`));
      }
    }
    return this.allocate(this.ips, owner, requested ? ipToNumber(requested) : undefined, "spec.clusterIp").then(numberToIp);
  }

  allocateNodePort(owner: string, field: string, requested?: number): Promise<number> {
    return this.allocate(this.nodePorts, owner, requested || undefined, field);
  }

  releaseIp(owner: string, ip: string): Promise<void> {
    return this.release(this.ips, owner, ipToNumber(ip));
  }

  releaseNodePort(owner: string, port: number): Promise<void> {
    return this.release(this.nodePorts, owner, port);
  }

  /** Every allocation key, both pools. */
  async allocations(): Promise<Allocation[]> {
    const out: Allocation[] = [];
    for (const [pool, kind] of [[this.ips, "ip"], [this.nodePorts, "nodePort"]] as const) {
      for (const kv of (await this.store.range(pool.prefix)).kvs) {
        const n = Number(kv.key.slice(pool.prefix.length));
        out.push({ pool: kind, value: pool.show(n), owner: decoder.decode(kv.value), key: kv.key, modRevision: kv.modRevision });
      }
    }
    return out;
  }

  /** Deletes an allocation key only if it is still exactly as `a` saw it (not claimed again since). */
  async releaseUnchanged(a: Allocation): Promise<boolean> {
    return (await this.store.compareAndSwap(a.key, a.modRevision, null)).succeeded;
  }

  private async allocate(pool: Pool, owner: string, requested: number | undefined, field: string): Promise<number> {
    if (requested !== undefined) {
      if (await this.claim(pool, owner, requested)) return requested;
      const holder = await this.ownerOf(pool, requested);
      throw invalidField(field, `${pool.show(requested)} is already allocated to ${holder ?? "another service"}`);
    }
    const taken = new Set((await this.store.range(pool.prefix)).kvs.map((kv) => Number(kv.key.slice(pool.prefix.length))));
    const size = pool.last - pool.first + 1;
    // Start anywhere, then walk: random starts spread concurrent allocators apart, the walk finds the holes.
    const start = Math.floor(this.random() * size);
    for (let i = 0; i < size; i++) {
      const n = pool.first + ((start + i) % size);
      if (taken.has(n)) continue;
      if (await this.claim(pool, owner, n)) return n;
    }
    throw invalidField(field, pool.exhausted);
  }

  /** Creates the value's key for owner; true also when owner already holds it (a retried request). */
  private async claim(pool: Pool, owner: string, n: number): Promise<boolean> {
    const key = `${pool.prefix}${n}`;
    const res = await this.store.compareAndSwap(key, 0, encoder.encode(owner));
    return res.succeeded || (res.current !== undefined && decoder.decode(res.current.value) === owner);
  }

  private async ownerOf(pool: Pool, n: number): Promise<string | undefined> {
    const kv = await this.store.get(`${pool.prefix}${n}`);
    return kv ? decoder.decode(kv.value) : undefined;
  }

  /** Deletes the value's key if owner holds it (never someone else's). */
  private async release(pool: Pool, owner: string, n: number): Promise<void> {
    const key = `${pool.prefix}${n}`;
    const kv = await this.store.get(key);
    if (kv && decoder.decode(kv.value) === owner) await this.store.compareAndSwap(key, kv.modRevision, null);
  }
}
