// The nemesis: faults injected into a running cluster on a schedule, alternating between kill -9 of the leader
// (then a restart from its data directory) and a pause (SIGSTOP, then SIGCONT) of a random master.
// Roles: runs beside the workload; `stop()` ends the schedule and heals what the current fault broke.
// Invariants: at most one fault is active at a time (so a majority is never lost for long, and every fault ends in
// a heal); each fault is logged with its start and end time on the workload's clock.
// With `netns` (masters in their own network namespaces) a third fault joins the rotation: the leader is cut off
// from the other masters while its clients can still reach it (so a deposed leader must not serve stale reads).
import type { Cluster } from "./cluster.js";
import type { Netns } from "./netns.js";

export type FaultKind = "kill-leader" | "pause" | "partition-leader";

export interface FaultEvent {
  kind: FaultKind;
  target: string;
  start: number;
  end?: number;
}

export interface NemesisOptions {
  /** Quiet time between faults. */
  intervalMs?: number;
  /** How long a fault lasts before it is healed. */
  faultMs?: number;
  /** The clock the history uses, so faults can be shown on it. */
  now: () => number;
  log?: (line: string) => void;
  netns?: Netns;
}


export class Nemesis {
  readonly events: FaultEvent[] = [];
  private running = false;
  private loop?: Promise<void>;
  private wake?: () => void;

  constructor(private readonly cluster: Cluster, private readonly o: NemesisOptions) {}

  begin(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  counts(): Record<FaultKind, number> {
    const c: Record<FaultKind, number> = { "kill-leader": 0, pause: 0, "partition-leader": 0 };
    for (const e of this.events) c[e.kind]++;
    return c;
  }

  private async run(): Promise<void> {
    const kinds: FaultKind[] = this.o.netns ? ["kill-leader", "pause", "partition-leader"] : ["kill-leader", "pause"];
    let i = 0;
    while (this.running) {
      await this.sleep(this.o.intervalMs ?? 4000);
      if (!this.running) break;
      await this.inject(kinds[i++ % kinds.length]);
    }
  }

  /** One fault, held for faultMs (cut short by stop()), then healed. */
  private async inject(kind: FaultKind): Promise<void> {
    const target = kind !== "pause" ? await this.cluster.leader() : this.randomMaster();
    if (!target) return this.o.log?.(`nemesis: no ${kind !== "pause" ? "leader" : "master"} to hit; skipped`);
    const event: FaultEvent = { kind, target, start: this.o.now() };
    this.events.push(event);
    this.o.log?.(`nemesis: ${kind} ${target}`);
    if (kind === "kill-leader") await this.cluster.kill(target);
    else if (kind === "pause") this.cluster.pause(target);
    else this.o.netns!.isolate(target);
    await this.sleep(this.o.faultMs ?? 3000);
    if (kind === "kill-leader") await this.cluster.start(target);
    else if (kind === "pause") this.cluster.resume(target);
    else this.o.netns!.heal();
    event.end = this.o.now();
    this.o.log?.(`nemesis: healed ${kind} ${target}`);
  }

  private randomMaster(): string | undefined {
    const up = this.cluster.masters.filter((m) => this.cluster.isRunning(m.name) && !this.cluster.isPaused(m.name));
    return up.length ? up[Math.floor(Math.random() * up.length)].name : undefined;
  }

  /** A sleep that stop() cuts short. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }
}
