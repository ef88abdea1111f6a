// Gives back service allocations nobody holds (allocation-repair-plan.ts), as Kubernetes' repair loops do for
// cluster IPs and NodePorts: on the leader, every interval, list the allocation keys and the services, and release
// a key seen leaked twice in a row. Deletes are compare-and-swap on the key's revision, so a value claimed again
// meanwhile is never taken from its new owner.
import type { Logger } from "../../common/logger.js";
import type { Service } from "../../gen/flotilla/v1/service.js";
import type { Registry } from "../registry.js";
import type { ServiceAllocator } from "../service-allocator.js";
import { confirmLeaks, leakedAllocations } from "./allocation-repair-plan.js";

export interface AllocationRepairOptions {
  allocator: ServiceAllocator;
  services: Registry<Service>;
  log: Logger;
  intervalMs: number;
}

export class AllocationRepair {
  private timer?: NodeJS.Timeout;
  private running = false;
  private suspects = new Map<string, number>();

  constructor(private readonly o: AllocationRepairOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.pass(), this.o.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One pass; exported for tests. Errors (no quorum, a lost leadership) just wait for the next pass. */
  async pass(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      // Allocations first: a service stored after this read is then seen by the list below.
      const allocations = await this.o.allocator.allocations();
      const services = (await this.o.services.list("")).items;
      const { release, suspects } = confirmLeaks(leakedAllocations(allocations, services), this.suspects);
      this.suspects = suspects;
      for (const a of release) {
        if (await this.o.allocator.releaseUnchanged(a)) {
          this.o.log.warn({ pool: a.pool, value: a.value, owner: a.owner }, "released a service allocation that no service holds");
        }
      }
    } catch (e) {
      this.o.log.debug({ err: e }, "allocation repair pass skipped");
    } finally {
      this.running = false;
    }
  }
}
