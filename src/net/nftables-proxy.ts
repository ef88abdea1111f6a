// The nftables service proxy: makes VIPs and NodePorts answer by DNAT in the kernel (the rules are built in
// nftables-rules.ts), so the packet path never enters Node; this module only runs `nft` and remembers what the kernel
// holds. nftablesAvailable() tells the agent whether this proxy can work here, so it can fall back to the userspace
// proxy and say why.
//
// Invariants:
// - Syncs run one at a time, in call order. The first creates the table `ip flotilla` in one transaction (replacing
//   one left by an earlier run); each later one sends only the difference from the state last applied, as one
//   `nft -f -` transaction, so the kernel holds either the old or the new state, never a mix.
// - If a difference script fails (someone changed or deleted the table behind our back), the table is recreated
//   whole, once, from the new view; if that fails too, sync rejects and the next sync starts from a fresh table.
// - close() waits for a running sync and deletes the table; later syncs reject.
// - `netns` (a name under /run/netns) runs every nft under `nsenter --net=...`: the tests' namespaces.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { unnatedServiceKeys } from "./conntrack-flows.js";
import { createScript, deleteScript, diffScript, planRuleset, type NftState } from "./nftables-rules.js";
import type { ServiceProxy, ServiceView } from "./types.js";

/** The part of a pino logger the proxy uses. */
export interface NftablesLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface NftablesProxyOptions {
  /** A network namespace (name under /run/netns) to run nft in, instead of the agent's own. */
  netns?: string;
  log?: NftablesLog;
  /** The nft binary (default "nft", from PATH). */
  nft?: string;
  /** The conntrack binary (default "conntrack", from PATH; Debian's package conntrack). */
  conntrack?: string;
}

/** How long one nft run may take before it is killed (it normally takes milliseconds). */
const NFT_TIMEOUT_MS = 15_000;
/** Up to this many newly routed VIP:ports, a `conntrack -D` each; above, one `conntrack -L` finds which need one. */
export const PER_PORT_CLEAR_LIMIT = 8;

export class NftablesProxy implements ServiceProxy {
  readonly mode = "nftables";
  /** What the kernel's table holds, as far as we know; undefined until created (or after a failed rebuild). */
  private applied: NftState | undefined;
  /** The tail of the sync queue. */
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** Reasons already logged for service ports left out, so a lasting one is logged once, not on every sync. */
  private reported = new Set<string>();
  private conntrackMissingLogged = false;

  constructor(private readonly options: NftablesProxyOptions = {}) {}

  sync(services: ServiceView[]): Promise<void> {
    const run = this.queue.then(() => this.apply(services));
    this.queue = run.catch(() => {});
    return run;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    this.applied = undefined;
    await this.nft(deleteScript());
  }

  private async apply(services: ServiceView[]): Promise<void> {
    if (this.closed) throw new Error("nftables proxy is closed");
    const { state, skipped } = planRuleset(services);
    for (const why of skipped) {
      if (!this.reported.has(why)) this.options.log?.warn({ reason: why }, "service port left out of the nftables rules");
    }
    this.reported = new Set(skipped);
    if (this.applied) {
      const script = diffScript(this.applied, state);
      if (!script) return;
      try {
        await this.nft(script);
        const before = this.applied;
        this.applied = state;
        await this.forgetUnnatedFlows(before, state);
        return;
      } catch (err) {
        this.options.log?.warn({ err: String(err) }, "incremental nftables update failed; recreating the table");
      }
    }
    this.applied = undefined;
    await this.nft(createScript(state));
    this.applied = state;
    await this.forgetUnnatedFlows(undefined, state);
    this.options.log?.info({ chains: state.chains.size }, "nftables table ip flotilla created");
  }

  /**
   * A packet sent to a VIP before its rules existed went out un-NATed, and conntrack keeps that flow (120 s for an
   * unanswered SYN): a later connection from the same source port would match it, skip the DNAT and hang. So once
   * a VIP:port is newly routed, its flows that were never NATed (reply source = the VIP itself) are deleted; NATed
   * flows, whose replies come from a backend, are untouched. Needs the `conntrack` tool; without it, logged once.
   */
  private async forgetUnnatedFlows(before: NftState | undefined, after: NftState): Promise<void> {
    let added = [...after.elements["service-ips"].keys()].filter((k) => !before?.elements["service-ips"].has(k));
    if (added.length > PER_PORT_CLEAR_LIMIT) {
      // Many at once (an agent starting with every service of the cluster): one listing instead of a process per
      // port, then deletions only where such a flow exists (usually none).
      const listing = await this.conntrack(["-L"]);
      if (listing === undefined) return;
      added = [...unnatedServiceKeys(listing, new Set(added))];
    }
    for (const key of added) {
      const [ip, proto, port] = key.split(" . ");
      if ((await this.conntrack(["-D", "-p", proto!, "--orig-dst", ip!, "--reply-src", ip!, "--orig-port-dst", port!])) === undefined) return;
    }
  }

  /** Runs the conntrack tool; undefined when it is missing (logged once) or failed (logged). */
  private async conntrack(args: string[]): Promise<string | undefined> {
    try {
      return await runTool(this.options.conntrack ?? "conntrack", args, { netns: this.options.netns });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === "ENOENT" || /failed to execute/.test(e.message)) {
        if (!this.conntrackMissingLogged) this.options.log?.info({}, "no conntrack tool: flows sent to a VIP before it was routed are not cleared (apt-get install conntrack)");
        this.conntrackMissingLogged = true;
        return undefined;
      }
      // A deletion exiting 1 with "0 flow entries have been deleted" is the common case: nothing to clear.
      if (/0 flow entries/.test(e.message)) return "";
      this.options.log?.warn({ err: e.message, args }, "conntrack failed; flows sent to a new VIP before it was routed may stay");
      return args[0] === "-L" ? undefined : "";
    }
  }

  private async nft(script: string): Promise<void> {
    await runNft(["-f", "-"], { netns: this.options.netns, nft: this.options.nft, stdin: script });
  }
}

export interface RunNftOptions {
  netns?: string;
  nft?: string;
  stdin?: string;
}

/** Runs nft with `args` (in `netns` when given) and resolves with its stdout; rejects with its stderr. */
export function runNft(args: string[], options: RunNftOptions = {}): Promise<string> {
  return runTool(options.nft ?? "nft", args, options);
}

/** Runs `tool` with `args` (in `netns` when given) and resolves with its stdout; rejects with its stderr. */
function runTool(tool: string, args: string[], options: { netns?: string; stdin?: string }): Promise<string> {
  const [cmd, argv] = options.netns ? ["nsenter", [`--net=/run/netns/${options.netns}`, tool, ...args]] : [tool, args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), NFT_TIMEOUT_MS);
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${cmd} ${argv.join(" ")} failed (${signal ?? `exit ${code}`}): ${stderr.trim() || "no message"}`));
    });
    // nft may exit before reading everything (a bad first line); its stderr says why, not EPIPE.
    child.stdin.on("error", () => {});
    child.stdin.end(options.stdin ?? "");
  });
}

/** CAP_NET_ADMIN, bit 12 of the effective capabilities: what nft needs (root has it, unless a container drops it). */
const CAP_NET_ADMIN = 12n;

async function hasNetAdmin(): Promise<boolean> {
  const status = await readFile("/proc/self/status", "utf8");
  const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return eff !== undefined && ((BigInt(`0x${eff}`) >> CAP_NET_ADMIN) & 1n) === 1n;
}

export type NftablesAvailability = { ok: true } | { ok: false; reason: string };

/**
 * Whether NftablesProxy can work here: Linux, CAP_NET_ADMIN, an nft binary, and a kernel that accepts a probe
 * table using every feature the proxy needs (nat hooks, fib, numgen, dnat, masquerade, dynamic sets, reject).
 * The probe table (ip flotilla-probe-<pid>) is deleted again.
 */
export async function nftablesAvailable(options: { netns?: string; nft?: string } = {}): Promise<NftablesAvailability> {
  if (process.platform !== "linux") return { ok: false, reason: `nftables needs Linux (this is ${process.platform})` };
  if (!(await hasNetAdmin())) return { ok: false, reason: "no CAP_NET_ADMIN: nftables rules need root" };
  try {
    await runNft(["--version"], { nft: options.nft });
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    return { ok: false, reason: missing ? "nft not found (install the nftables package)" : `nft does not run: ${String(err)}` };
  }
  try {
    await runNft(["list", "tables"], options);
  } catch (err) {
    return { ok: false, reason: `nft cannot list tables: ${String(err)}` };
  }
  const table = `ip flotilla-probe-${process.pid}`;
  try {
    await runNft(["-f", "-"], { ...options, stdin: probeScript(table) });
  } catch (err) {
    return { ok: false, reason: `the kernel refused a probe table: ${String(err)}` };
  }
  try {
    await runNft(["delete", "table", ...table.split(" ")], options);
  } catch (err) {
    return { ok: false, reason: `nft could not delete its probe table ${table}: ${String(err)}` };
  }
  return { ok: true };
}

/** A throwaway table with one use of each kernel feature the proxy relies on (each may be a module to load). */
function probeScript(table: string): string {
  return `add table ${table}
delete table ${table}
table ${table} {
  set aff { type ipv4_addr; flags dynamic,timeout; timeout 60s; }
  map vips { type ipv4_addr . inet_proto . inet_service : verdict; }
  chain be { update @aff { ip saddr }; meta l4proto tcp dnat to 192.0.2.1:9; }
  chain pre {
    type nat hook prerouting priority -100; policy accept;
    ip daddr . meta l4proto . th dport vmap @vips
    ip daddr 192.0.2.2 fib daddr type local numgen random mod 2 vmap { 0 : goto be, 1 : goto be }
  }
  chain post { type nat hook postrouting priority 100; policy accept; meta mark & 0x4000 == 0x4000 masquerade; }
  chain out { type filter hook output priority -110; policy accept; ip daddr 192.0.2.3 ct state new meta l4proto tcp reject with tcp reset; }
}
`;
}
