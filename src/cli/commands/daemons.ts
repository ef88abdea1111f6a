// `flotilla master` and `flotilla agent`: long-running processes that stop cleanly on SIGINT or SIGTERM.
import { existsSync, readFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { ApiClient, isCode } from "../../api/client.js";
import type { AddMemberResponse } from "../../gen/flotilla/v1/cluster.js";
import { createLogger } from "../../common/logger.js";
import { Agent, JoinRefusedError, type AgentOptions } from "../../agent/agent.js";
import { PROXY_MODES, type ProxyMode } from "../../net/node-network.js";
import { splitHostPort } from "../../api/address.js";
import type { RuntimeKind } from "../../agent/runtime/index.js";
import { Master } from "../../master/master.js";
import { KvStoreAdapter } from "../../store/kv-adapter.js";
import { DEFAULT_SNAPSHOT_THRESHOLD, ReplicatedStore } from "../../store/replicated/replicated-store.js";
import { SCORING_STRATEGIES, type ScoringStrategy } from "../../master/scheduler/score.js";

export interface MasterFlags {
  listen: string;
  name?: string;
  raftListen?: string;
  initialCluster?: string;
  init?: boolean;
  join?: string;
  etcdListen?: string;
  snapshotThreshold?: string;
  data: string;
  metricsListen?: string;
  scoring: string;
  heartbeatInterval: string;
  nodeGracePeriod: string;
  podEvictionTimeout: string;
  compactionInterval: string;
  retainRevisions: string;
  allocationRepairInterval: string;
  serviceCidr?: string;
}

function positiveNumber(flag: string, value: string, unit = "seconds"): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag}: "${value}" must be a positive number of ${unit}`);
  return n;
}

function untilSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      void stop().finally(resolve);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

export async function runMaster(flags: MasterFlags): Promise<void> {
  if (!SCORING_STRATEGIES.includes(flags.scoring as ScoringStrategy)) {
    throw new Error(`--scoring: "${flags.scoring}" must be one of ${SCORING_STRATEGIES.join(", ")}`);
  }
  const log = createLogger("master", flags.name ?? hostname());
  const replicated = flags.join ? await joinReplicatedStore(flags) : flags.initialCluster || flags.init ? await openReplicatedStore(flags) : undefined;
  // The process stays up so that its clients get the cause with every refused request instead of a closed port.
  replicated?.onFailure((e) => log.error({ code: e.code }, e.message));
  const master = new Master({
    ...(replicated ? { store: new KvStoreAdapter(replicated, () => replicated.close()), leadership: replicated, etcd: replicated, etcdListen: flags.etcdListen, membership: replicated } : {}),
    listen: flags.listen,
    dataDir: flags.data,
    metricsListen: flags.metricsListen,
    scoring: flags.scoring as ScoringStrategy,
    heartbeatIntervalSeconds: positiveNumber("--heartbeat-interval", flags.heartbeatInterval),
    nodeGracePeriodSeconds: positiveNumber("--node-grace-period", flags.nodeGracePeriod),
    podEvictionTimeoutSeconds: positiveNumber("--pod-eviction-timeout", flags.podEvictionTimeout),
    compactionIntervalSeconds: positiveNumber("--compaction-interval", flags.compactionInterval),
    retainRevisions: Math.floor(positiveNumber("--retain-revisions", flags.retainRevisions, "revisions")),
    serviceCidr: flags.serviceCidr,
    allocationRepairIntervalSeconds: positiveNumber("--allocation-repair-interval", flags.allocationRepairInterval),
    log,
  });
  await master.start();
  // A line on stdout that supervisors (flotilla up, tests) wait for.
  process.stdout.write(`master listening on ${master.address}${master.etcdAddress ? `; etcd API on ${master.etcdAddress}` : ""}\n`);
  await untilSignal(() => master.stop());
}

/** `--initial-cluster m1=HOST:PORT,m2=...`: the masters' Raft peer addresses, this one included. */
export function parseInitialCluster(text: string): Map<string, string> {
  const peers = new Map<string, string>();
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [name, address] = part.split("=", 2);
    if (!name || !address || !/^[^:]+:\d+$/.test(address)) throw new Error(`--initial-cluster: "${part}" must be NAME=HOST:PORT`);
    if (peers.has(name)) throw new Error(`--initial-cluster: "${name}" appears twice`);
    peers.set(name, address);
  }
  return peers;
}

async function openReplicatedStore(flags: MasterFlags): Promise<ReplicatedStore> {
  if (!flags.name) throw new Error("--name is required with --init or --initial-cluster");
  if (flags.init && !flags.raftListen) throw new Error("--raft-listen is required with --init");
  const peers = parseInitialCluster(flags.initialCluster ?? `${flags.name}=${flags.raftListen}`);
  const own = peers.get(flags.name);
  if (!own) throw new Error(`--initial-cluster: it must list this master's own name "${flags.name}"`);
  return ReplicatedStore.open({ id: flags.name, dataDir: flags.data, raftListen: flags.raftListen ?? own, peers, snapshotThreshold: snapshotThreshold(flags) });
}

/**
 * `--join HOST:PORT`: asks an existing master to add this one as a learner, then starts as that learner (the
 * leader promotes it once it has caught up). A master that already holds data simply restarts.
 */
async function joinReplicatedStore(flags: MasterFlags): Promise<ReplicatedStore> {
  if (!flags.name || !flags.raftListen) throw new Error("--name and --raft-listen are required with --join");
  const peers = new Map([[flags.name, flags.raftListen]]);
  const open = (joinAs?: { voters: string[]; learners: string[] }, clusterId?: string) =>
    ReplicatedStore.open({ id: flags.name!, dataDir: flags.data, raftListen: flags.raftListen!, peers, joinAs, clusterId, snapshotThreshold: snapshotThreshold(flags) });
  if (existsSync(join(flags.data, "raft"))) return open();
  const tokenFile = join(flags.data, "admin.token");
  if (!existsSync(tokenFile)) throw new Error(`--join: copy the cluster's admin.token from an existing master into ${flags.data} first`);
  const client = new ApiClient({ servers: flags.join!.split(","), token: readFileSync(tokenFile, "utf8").trim() });
  try {
    const res = await retryWhileUnavailable(() =>
      client.call<AddMemberResponse>((s, md, o, cb) => s.cluster.addMember({ name: flags.name!, raftAddress: flags.raftListen! }, md, o, cb)),
    );
    for (const m of res.members) if (m.raftAddress) peers.set(m.name, m.raftAddress);
    const voters = res.members.filter((m) => !m.isLearner).map((m) => m.name);
    const learners = res.members.filter((m) => m.isLearner).map((m) => m.name);
    return open({ voters, learners: learners.includes(flags.name) ? learners : [...learners, flags.name] }, res.clusterId);
  } finally {
    client.close();
  }
}

function snapshotThreshold(flags: MasterFlags): number {
  const n = Number(flags.snapshotThreshold ?? String(DEFAULT_SNAPSHOT_THRESHOLD));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--snapshot-threshold: "${flags.snapshotThreshold}" must be a whole number of entries >= 1`);
  return n;
}

/** The cluster may be electing a leader: an UNAVAILABLE answer is retried for a while. */
async function retryWhileUnavailable<T>(call: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await call();
    } catch (e) {
      if (!isCode(e, status.UNAVAILABLE) || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export interface AgentFlags {
  server: string;
  token?: string;
  data: string;
  driver: string;
  address?: string;
  name?: string;
  apiPort: string;
  metricsListen?: string;
  label: string[];
  proxyMode: string;
  dnsListen?: string;
  clusterDomain: string;
  ingress?: string;
}

/** The first non-internal IPv4 address, as k3s picks a node's address; loopback when there is none. */
export function primaryAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    const found = list?.find((i) => i.family === "IPv4" && !i.internal);
    if (found) return found.address;
  }
  return "127.0.0.1";
}

/** The node's service proxy, DNS and ingress, from the agent's flags (undefined: --proxy-mode off). */
function networkOptions(flags: AgentFlags, address: string): AgentOptions["network"] {
  if (flags.proxyMode === "off") return undefined;
  if (!(PROXY_MODES as readonly string[]).includes(flags.proxyMode)) throw new Error(`--proxy-mode: "${flags.proxyMode}" must be one of ${PROXY_MODES.join(", ")}, or off`);
  const root = process.getuid?.() === 0;
  const dnsListen = flags.dnsListen === "off" ? undefined : (flags.dnsListen ?? (root ? `${address}:53` : undefined));
  if (dnsListen) {
    try {
      splitHostPort(dnsListen);
    } catch (e) {
      throw new Error(`--dns-listen: ${(e as Error).message}`);
    }
  }
  let ingressPort: number | undefined;
  if (flags.ingress !== undefined) {
    ingressPort = Number(flags.ingress);
    if (!Number.isInteger(ingressPort) || ingressPort < 1 || ingressPort > 65535) throw new Error(`--ingress: "${flags.ingress}" must be a port between 1 and 65535`);
  }
  return { proxyMode: flags.proxyMode as ProxyMode, dnsListen, domain: flags.clusterDomain, ingressPort };
}

export async function runAgent(flags: AgentFlags): Promise<void> {
  if (flags.driver !== "docker" && flags.driver !== "process") throw new Error(`--driver: "${flags.driver}" must be docker or process`);
  const labels: Record<string, string> = {};
  for (const l of flags.label) {
    const [k, v] = l.split("=", 2);
    if (!k || v === undefined) throw new Error(`--label: "${l}" must be KEY=VALUE`);
    labels[k] = v;
  }
  const nodeName = (flags.name ?? hostname()).toLowerCase();
  const log = createLogger("agent", nodeName);
  const address = flags.address ?? primaryAddress();
  const agent = new Agent({
    servers: flags.server.split(",").map((s) => s.trim()).filter(Boolean),
    token: flags.token ?? process.env.FLOTILLA_TOKEN ?? "",
    dataDir: flags.data,
    driver: flags.driver as RuntimeKind,
    address,
    nodeName,
    apiPort: Number(flags.apiPort),
    metricsListen: flags.metricsListen,
    labels,
    log,
    network: networkOptions(flags, address),
  });
  try {
    await agent.start();
  } catch (e) {
    await agent.stop().catch(() => {});
    if (e instanceof JoinRefusedError) throw new Error(`cannot join: ${e.message}`);
    throw e;
  }
  process.stdout.write(`agent ${agent.nodeName} joined; serving on ${agent.endpoint}\n`);
  await untilSignal(() => agent.stop());
}
