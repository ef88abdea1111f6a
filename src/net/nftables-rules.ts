// The nftables service proxy's rules as pure functions: the table a ServiceView[] calls for, and the nft script
// that turns one such table into another by touching only what differs. nftables-proxy.ts only feeds these scripts
// to `nft -f -`, so every rule, name and ordering decision here is testable without a kernel.
//
// Packet path (one table, `ip flotilla`, IPv4 only; a connection's first packet is NATed, conntrack does the rest):
// - nat-prerouting (hook prerouting, -100: the node's containers and other hosts) and nat-output (hook output,
//   -100: the node's own processes) jump to `services`, which looks up
//     `ip daddr . meta l4proto . th dport` in the verdict map service-ips (VIP . proto . port → goto svc.<port>),
//     and, for packets to one of the node's own addresses (`fib daddr type local`, 127.0.0.0/8 excluded),
//     `meta l4proto . th dport` in service-nodeports (proto . nodePort → goto np.<port>: marks, then goes to svc).
// - svc.<ns>/<name>/<proto>/<port> picks a backend: `numgen random mod N vmap { 0 : goto be.<...>, ... }`, each
//   be.<...>/<address>/<port> chain doing `dnat to address:port`. Per-backend chains rather than one
//   `dnat to numgen ... map { i : addr . port }` rule, because ClientIP affinity needs a place per backend to
//   record the client (below), and so adding or removing a backend leaves the other backends' chains untouched.
// - ClientIP affinity is done in nftables, as kube-proxy does: each backend has a dynamic set aff.<...> of client
//   addresses with a 3-hour timeout (Kubernetes' default, refreshed by every new connection); its be chain adds the
//   client, and svc first sends a client found in some backend's set to that backend. Removing a backend deletes
//   its set, so its clients are spread again.
// - A service port without backends is in the sets no-backend-ips / no-backend-nodeports instead; filter chains
//   (hooks output, forward and input, priority -110: reject is not allowed in nat chains) send its new connections
//   to `refuse`: TCP reset, ICMP port unreachable for UDP. Clients fail at once, never hang.
//
// Source NAT, and what the backend sees as the client's address:
// - (a) a node process → VIP → backend on another node: DNAT in output; the source is the node's address on the
//   route to the VIP, reachable from the backend, so no SNAT: the backend sees the node's address, i.e. the
//   client's. A node process → VIP → backend on this node (its address, or a 127.0.0.x pod address): delivered
//   over lo, no SNAT. The node needs a route covering the service IPs (the default route does): without one,
//   connect() fails with ENETUNREACH before any hook runs.
// - (b) a container → VIP → backend: DNAT in prerouting. A backend on this node is a container dialled at its own
//   address (local-backends.ts, `podNetwork`): its be chain marks clients other than the node itself for
//   masquerade, since a reply on a shared bridge would otherwise go straight to the client, past the un-NAT; the
//   backend sees the bridge's address (as through docker-proxy). Towards another node, replies must come back through this node: the container network's
//   own masquerade (Docker's MASQUERADE of its bridge subnet) provides that, and the backend sees this node's
//   address; on a routed pod network it would see the container's.
// - (c) another host → NodePort → backend on another node: the np chain sets MASQUERADE_MARK and nat-postrouting
//   masquerades marked packets that leave the node, so replies return through this node (which undoes both NATs):
//   the backend sees this node's address. A NodePort → backend on this node's address is delivered locally
//   without SNAT: the backend sees the real client. (The same holds for a node process dialling its own NodePort.)
// - Loopback backends (the process driver on one machine, 127.0.0.x): from the node's processes they need nothing.
//   From containers or other hosts the kernel drops a packet DNATed to 127.0.0.0/8 as martian unless
//   net.ipv4.conf.<incoming interface>.route_localnet=1, which this proxy never sets (it would expose every
//   127.0.0.1 listener to the network, CVE-2020-8558): such a SYN is lost and the client's retransmission, a
//   second later, is balanced afresh. Where an operator sets it, be chains of loopback backends mark the packet
//   and nat-input source-NATs it to 127.0.0.1 so the reply can be routed: the backend sees 127.0.0.1.
// - A host outside the cluster sending to a VIP through this node is not supported: no SNAT is done for it, so a
//   backend on another node would answer it directly.
//
// What the node must provide: net.ipv4.ip_forward=1 for container and NodePort traffic to other nodes (Docker sets
// it), and a firewall that lets that traffic through: a drop in another table (Docker's iptables FORWARD policy is
// DROP) cannot be overridden from this one; e.g. `iptables -I DOCKER-USER -m conntrack --ctstate DNAT -j ACCEPT`.
// With Docker, a backend is a published host port: traffic DNATed by us to one on this node would get no second
// DNAT from Docker (same hook; the first NAT binding wins) and docker-proxy, its userland proxy, would carry it;
// hence this node's own backends come dialled at their containers' addresses (local-backends.ts). UDP flows keep their conntrack entry, so a datagram stream to
// a removed backend keeps going there until the entry idles out (30 s, 120 s once two-way); TCP connections are
// never cut, only new ones move.
//
// Incremental changes (diffScript): the skeleton (base chains, maps, sets, services, refuse) is created once and
// never flushed; a change adds or deletes map elements and per-service-port chains and sets, and flushes and
// refills only chains whose rules changed (a svc chain when its backends change, never the unchanged be chains).
// Each script is one nft transaction: it applies whole or not at all. Statements are ordered so no reference
// dangles at any point of the transaction: new sets, new chains (empty, then filled), changed chains, element
// deletions, element additions, removed chains (all flushed, then deleted), removed sets.
import { isIPv4 } from "node:net";
import type { Protocol, ServicePortView, ServiceView } from "./types.js";

export const TABLE_FAMILY = "ip";
export const TABLE_NAME = "flotilla";
const TABLE = `${TABLE_FAMILY} ${TABLE_NAME}`;

/** Packet mark bit meaning "source-NAT this connection" (the same bit kube-proxy uses for its masquerade mark). */
export const MASQUERADE_MARK = 0x4000;

/** How long a client stays with its backend after its last new connection (Kubernetes' default timeoutSeconds). */
export const AFFINITY_TIMEOUT_SECONDS = 10_800;

/** Elements of the skeleton's maps and sets that the view fills. */
export const ELEMENT_SETS = ["service-ips", "service-nodeports", "no-backend-ips", "no-backend-nodeports"] as const;
export type ElementSet = (typeof ELEMENT_SETS)[number];

/** Everything of the table that depends on the view (the skeleton is fixed). Two equal states give an empty diff. */
export interface NftState {
  /** Per skeleton map or set: element key in nft syntax ("10.96.0.10 . tcp . 80") → value ("" in a set). */
  elements: Record<ElementSet, Map<string, string>>;
  /** Per-service-port chains (svc, np, be), name → rules in order. */
  chains: Map<string, string[]>;
  /** Affinity sets, name → declaration (what goes between the braces; the same for every set, so never changed). */
  sets: Map<string, string>;
}

/** The state for a view, and the service ports left out of it with why (the proxy logs them). */
export interface NftPlan {
  state: NftState;
  skipped: string[];
}

export function emptyState(): NftState {
  return {
    elements: { "service-ips": new Map(), "service-nodeports": new Map(), "no-backend-ips": new Map(), "no-backend-nodeports": new Map() },
    chains: new Map(),
    sets: new Map(),
  };
}

const mark = `0x${MASQUERADE_MARK.toString(16)}`;

/** The fixed part of the table, as one `table` block: base chains, the dispatch chains, the maps and sets. */
const SKELETON = `table ${TABLE} {
  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
  map service-nodeports { type inet_proto . inet_service : verdict; }
  set no-backend-ips { type ipv4_addr . inet_proto . inet_service; }
  set no-backend-nodeports { type inet_proto . inet_service; }
  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
  }
  chain refuse {
    meta l4proto tcp reject with tcp reset
    reject
  }
  chain nat-prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump services
  }
  chain nat-output {
    type nat hook output priority -100; policy accept;
    jump services
  }
  # Masquerades marked connections (NodePorts) that leave the node; those delivered here keep their source.
  chain nat-postrouting {
    type nat hook postrouting priority 100; policy accept;
    meta mark & ${mark} == 0 return
    meta mark set meta mark & 0x${(~MASQUERADE_MARK >>> 0).toString(16)}
    fib daddr type != local masquerade
  }
  # Marked connections from outside DNATed to a loopback backend (only possible with route_localnet=1): the reply
  # from 127.0.0.x could not be routed out, so the backend sees them coming from 127.0.0.1.
  chain nat-input {
    type nat hook input priority 100; policy accept;
    meta mark & ${mark} == ${mark} ip daddr 127.0.0.0/8 snat to 127.0.0.1
  }
  # Services without backends: before NAT (-110), so the VIP or NodePort is still the destination.
  chain filter-output {
    type filter hook output priority -110; policy accept;
    ct state new ip daddr . meta l4proto . th dport @no-backend-ips goto refuse
  }
  chain filter-forward {
    type filter hook forward priority -110; policy accept;
    ct state new ip daddr . meta l4proto . th dport @no-backend-ips goto refuse
  }
  chain filter-input {
    type filter hook input priority -110; policy accept;
    ct state new fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport @no-backend-nodeports goto refuse
  }
}`;

const protoName = (p: Protocol) => (p === "UDP" ? "udp" : "tcp");

/** "ns/name/tcp/80": identifies a service port in chain and set names (names are DNS labels: no "/"). */
const portId = (s: ServiceView, p: ServicePortView) => `${s.namespace}/${s.name}/${protoName(p.protocol)}/${p.port}`;

export function serviceChainName(s: ServiceView, p: ServicePortView): string {
  return `svc.${portId(s, p)}`;
}

export function nodePortChainName(s: ServiceView, p: ServicePortView): string {
  return `np.${portId(s, p)}`;
}

export function backendChainName(s: ServiceView, p: ServicePortView, b: { address: string; port: number }): string {
  return `be.${portId(s, p)}/${b.address}/${b.port}`;
}

export function affinitySetName(s: ServiceView, p: ServicePortView, b: { address: string; port: number }): string {
  return `aff.${portId(s, p)}/${b.address}/${b.port}`;
}

const DNS_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
/** nft's limit on chain and set names (NFT_NAME_MAXLEN 256, with the terminating NUL). */
const MAX_NAME = 255;
const validPort = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;

/** Why a service port cannot have rules, or undefined when it can (the view comes from the API, so this is defence). */
function invalidReason(s: ServiceView, p: ServicePortView): string | undefined {
  if (!DNS_NAME.test(s.namespace) || !DNS_NAME.test(s.name)) return "namespace or name is not a DNS name";
  if (s.clusterIp !== "" && !isIPv4(s.clusterIp)) return `cluster IP ${s.clusterIp} is not IPv4`;
  if (!validPort(p.port) || (p.nodePort !== 0 && !validPort(p.nodePort))) return "port out of range";
  if (p.protocol !== "TCP" && p.protocol !== "UDP") return `protocol ${String(p.protocol)} is not TCP or UDP`;
  for (const b of p.backends) {
    if (!isIPv4(b.address)) return `backend ${b.address} is not IPv4`;
    if (!validPort(b.port)) return `backend ${b.address}:${b.port} has a port out of range`;
  }
  if (affinitySetName(s, p, { address: "255.255.255.255", port: 65535 }).length > MAX_NAME) return "namespace and name too long for nft names";
  return undefined;
}

/** The table's variable part for `services`: map elements, per-service-port chains and affinity sets. */
export function planRuleset(services: ServiceView[]): NftPlan {
  const state = emptyState();
  const skipped: string[] = [];
  // Services in a stable order, so a clash (two owners of one VIP:port or NodePort) always resolves the same way.
  // Code-point order, not localeCompare: the same on every machine.
  const id = (s: ServiceView) => `${s.namespace}/${s.name}`;
  const sorted = [...services].sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
  for (const s of sorted) {
    for (const p of s.ports) {
      const what = `service ${s.namespace}/${s.name} port ${p.port}/${p.protocol}`;
      const invalid = invalidReason(s, p);
      if (invalid) {
        skipped.push(`${what}: ${invalid}`);
        continue;
      }
      const proto = protoName(p.protocol);
      const vipKey = s.clusterIp ? `${s.clusterIp} . ${proto} . ${p.port}` : undefined;
      const nodePortKey = p.nodePort ? `${proto} . ${p.nodePort}` : undefined;
      // Nothing would lead to its chains (a headless service).
      if (!vipKey && !nodePortKey) continue;
      if (vipKey && (state.elements["service-ips"].has(vipKey) || state.elements["no-backend-ips"].has(vipKey))) {
        skipped.push(`${what}: ${s.clusterIp}:${p.port}/${p.protocol} already belongs to another service port`);
        continue;
      }
      if (nodePortKey && (state.elements["service-nodeports"].has(nodePortKey) || state.elements["no-backend-nodeports"].has(nodePortKey))) {
        skipped.push(`${what}: NodePort ${p.nodePort}/${p.protocol} already belongs to another service port`);
        continue;
      }
      if (p.backends.length === 0) {
        if (vipKey) state.elements["no-backend-ips"].set(vipKey, "");
        if (nodePortKey) state.elements["no-backend-nodeports"].set(nodePortKey, "");
        continue;
      }
      addServicePort(state, s, p, vipKey, nodePortKey);
    }
  }
  return { state, skipped };
}

function addServicePort(state: NftState, s: ServiceView, p: ServicePortView, vipKey?: string, nodePortKey?: string): void {
  const affinity = s.sessionAffinity === "ClientIP";
  const proto = protoName(p.protocol);
  // The same address:port twice would be one chain; keep the first.
  const backends = p.backends.filter((b, i) => p.backends.findIndex((o) => o.address === b.address && o.port === b.port) === i);
  const svcRules: string[] = [];
  const picks: string[] = [];
  backends.forEach((b, i) => {
    const chain = backendChainName(s, p, b);
    const rules: string[] = [];
    if (affinity) {
      const set = affinitySetName(s, p, b);
      state.sets.set(set, `type ipv4_addr; flags dynamic,timeout; timeout ${AFFINITY_TIMEOUT_SECONDS}s;`);
      svcRules.push(`ip saddr @${set} goto ${chain}`);
      rules.push(`update @${set} { ip saddr }`);
    }
    // Only meaningful for packets from outside the node (see the header): nat-input SNATs them to 127.0.0.1.
    if (b.address.startsWith("127.")) rules.push(`meta mark set meta mark | ${mark}`);
    // A container on this node dialled directly (local-backends.ts): other containers reach it through the same
    // bridge, and its reply would skip the un-NAT (straight to the client, not via this node), so clients other
    // than the node itself are masqueraded, as docker-proxy did for them. The node's own connections keep their source.
    if (b.podNetwork) rules.push(`fib saddr type != local meta mark set meta mark | ${mark}`);
    rules.push(`meta l4proto ${proto} dnat to ${b.address}:${b.port}`);
    state.chains.set(chain, rules);
    picks.push(`${i} : goto ${chain}`);
  });
  svcRules.push(backends.length === 1 ? `goto ${backendChainName(s, p, backends[0]!)}` : `numgen random mod ${backends.length} vmap { ${picks.join(", ")} }`);
  const svc = serviceChainName(s, p);
  state.chains.set(svc, svcRules);
  if (vipKey) state.elements["service-ips"].set(vipKey, `goto ${svc}`);
  if (nodePortKey) {
    const np = nodePortChainName(s, p);
    state.chains.set(np, [`meta mark set meta mark | ${mark}`, `goto ${svc}`]);
    state.elements["service-nodeports"].set(nodePortKey, `goto ${np}`);
  }
}

const sameRules = (a: string[] | undefined, b: string[] | undefined) => a !== undefined && b !== undefined && a.length === b.length && a.every((r, i) => r === b[i]);
const element = (key: string, value: string) => (value ? `${key} : ${value}` : key);

/** The nft script taking the kernel's table from `from` to `to`; "" when they are equal. */
export function diffScript(from: NftState, to: NftState): string {
  const out: string[] = [];
  for (const [name, decl] of to.sets) if (!from.sets.has(name)) out.push(`add set ${TABLE} ${name} { ${decl} }`);

  const added = [...to.chains.keys()].filter((c) => !from.chains.has(c));
  const changed = [...to.chains.keys()].filter((c) => from.chains.has(c) && !sameRules(from.chains.get(c), to.chains.get(c)));
  const removed = [...from.chains.keys()].filter((c) => !to.chains.has(c));
  // Declared before any is filled, so rules may refer to chains added in the same script.
  for (const c of added) out.push(`add chain ${TABLE} ${c}`);
  for (const c of added) for (const r of to.chains.get(c)!) out.push(`add rule ${TABLE} ${c} ${r}`);
  for (const c of changed) {
    out.push(`flush chain ${TABLE} ${c}`);
    for (const r of to.chains.get(c)!) out.push(`add rule ${TABLE} ${c} ${r}`);
  }

  for (const set of ELEMENT_SETS) {
    const before = from.elements[set];
    const after = to.elements[set];
    const gone = [...before.keys()].filter((k) => after.get(k) !== before.get(k));
    if (gone.length) out.push(`delete element ${TABLE} ${set} { ${gone.join(", ")} }`);
  }
  for (const set of ELEMENT_SETS) {
    const before = from.elements[set];
    const after = to.elements[set];
    const fresh = [...after.entries()].filter(([k, v]) => before.get(k) !== v);
    if (fresh.length) out.push(`add element ${TABLE} ${set} { ${fresh.map(([k, v]) => element(k, v)).join(", ")} }`);
  }

  // Removed chains may refer to each other (svc → be): all are emptied before any is deleted.
  for (const c of removed) out.push(`flush chain ${TABLE} ${c}`);
  for (const c of removed) out.push(`delete chain ${TABLE} ${c}`);
  for (const name of from.sets.keys()) if (!to.sets.has(name)) out.push(`delete set ${TABLE} ${name}`);
  return out.length ? `${out.join("\n")}\n` : "";
}

/**
 * The script that (re)creates the whole table for `state` in one transaction, whatever the kernel held before
 * (a table left by an earlier run is replaced; established connections keep their conntrack NAT).
 */
export function createScript(state: NftState): string {
  return `add table ${TABLE}\ndelete table ${TABLE}\n${SKELETON}\n${diffScript(emptyState(), state)}`;
}

/** Deletes the table, and succeeds when there is none. */
export function deleteScript(): string {
  return `add table ${TABLE}\ndelete table ${TABLE}\n`;
}
