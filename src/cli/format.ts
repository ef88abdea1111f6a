// The CLI's output, pure: kubectl-style tables for `get`, ages, JSON/YAML documents, and the tab alignment that
// `describe` shares. Nothing here does I/O; callers print the strings.
import { stringify } from "yaml";
import { Deployment } from "../gen/flotilla/v1/deployment.js";
import { Node } from "../gen/flotilla/v1/node.js";
import { Pod } from "../gen/flotilla/v1/pod.js";
import { Endpoints, Service } from "../gen/flotilla/v1/service.js";
import { Ingress } from "../gen/flotilla/v1/ingress.js";
import type { PortStatus } from "../gen/flotilla/v1/pod.js";
import { displayStatus } from "../api/pod-status.js";
import { formatMatchLabels } from "../api/labels.js";

// ---------------------------------------------------------------------------------------------------------------
// Ages

const SECOND = 1000;

/** How long ago `creationTimestamp` was, as kubectl's AGE column shows it; `<unknown>` for an empty or bad time. */
export function formatAge(creationTimestamp: string, now: Date): string {
  const created = creationTimestamp ? Date.parse(creationTimestamp) : NaN;
  if (Number.isNaN(created)) return "<unknown>";
  return humanDuration(now.getTime() - created);
}

/**
 * k8s.io/apimachinery's duration.HumanDuration: two units while the smaller one still matters ("3m20s", "5h30m",
 * "3d4h", "2y10d"), one unit after that. Up to a second in the future counts as now, to forgive clock skew.
 */
export function humanDuration(milliseconds: number): string {
  const seconds = Math.trunc(milliseconds / SECOND);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return twoUnits(minutes, "m", seconds % 60, "s");
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return twoUnits(hours, "h", minutes % 60, "m");
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return twoUnits(days, "d", hours % 24, "h");
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) return twoUnits(years, "y", days % 365, "d");
  return `${years}y`;
}

function twoUnits(major: number, majorUnit: string, minor: number, minorUnit: string): string {
  return minor === 0 ? `${major}${majorUnit}` : `${major}${majorUnit}${minor}${minorUnit}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Alignment

/**
 * Go's text/tabwriter as kubectl configures it: each tab ends a cell, and cells in the same column line up across
 * adjacent lines that have that column. A line with fewer cells ends the column, so sections align separately,
 * the way `kubectl describe` looks. The last cell of a line is never padded, and trailing spaces are trimmed.
 */
export function alignTabs(text: string, padding: number): string {
  const lines = text.split("\n").map((line) => line.split("\t"));
  const out: string[] = [];
  alignColumnsFrom(lines, 0, lines.length, [], padding, out);
  return out.map((line) => line.trimEnd()).join("\n");
}

/** Port of tabwriter's format(): finds each block of lines sharing the next column, sizes it, recurses. */
function alignColumnsFrom(lines: string[][], start: number, end: number, widths: number[], padding: number, out: string[]): void {
  const column = widths.length;
  let pending = start;
  for (let i = start; i < end; i++) {
    if (!hasCellInColumn(lines[i], column)) continue;
    writeAligned(lines, pending, i, widths, out);
    let blockEnd = i;
    let width = 0;
    for (; blockEnd < end && hasCellInColumn(lines[blockEnd], column); blockEnd++) {
      width = Math.max(width, textWidth(lines[blockEnd][column]) + padding);
    }
    alignColumnsFrom(lines, i, blockEnd, [...widths, width], padding, out);
    pending = blockEnd;
    i = blockEnd; // line blockEnd lacks this column, so the loop's i++ may skip it
  }
  writeAligned(lines, pending, end, widths, out);
}

/** Whether the line has a tab-terminated cell in this column (the last cell never counts). */
function hasCellInColumn(cells: string[], column: number): boolean {
  return column < cells.length - 1;
}

function writeAligned(lines: string[][], start: number, end: number, widths: number[], out: string[]): void {
  for (let i = start; i < end; i++) {
    out.push(lines[i].map((cell, j) => (j < widths.length ? cell + " ".repeat(widths[j] - textWidth(cell)) : cell)).join(""));
  }
}

/** Width in code points, as tabwriter counts runes. */
function textWidth(text: string): number {
  return [...text].length;
}

/** Makes text safe to place in one cell: a tab or newline inside it would break the columns. */
export function cellText(text: string): string {
  return text.replace(/[\t\r\n]+/g, " ");
}

/** A `kubectl get` table: upper-case headers, columns three spaces apart, no trailing spaces, final newline. */
export function table(headers: string[], rows: string[][]): string {
  const lines = [headers.map((h) => h.toUpperCase()), ...rows].map((cells) => cells.map(cellText).join("\t"));
  return alignTabs(lines.join("\n"), 3) + "\n";
}

// ---------------------------------------------------------------------------------------------------------------
// Pods

const NONE = "<none>";

export function podHeaders(wide: boolean): string[] {
  const headers = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
  return wide ? [...headers, "IP", "NODE", "PORTS"] : headers;
}

export function podRows(pods: Pod[], now: Date, wide: boolean): string[][] {
  return pods.map((pod) => {
    const age = formatAge(pod.metadata?.creationTimestamp ?? "", now);
    const row = [pod.metadata?.name ?? "", podReady(pod), displayStatus(pod), String(podRestarts(pod)), age];
    if (!wide) return row;
    return [...row, pod.status?.hostIp || NONE, pod.spec?.nodeName || NONE, formatPodPorts(pod.status?.ports ?? []) || NONE];
  });
}

export function podTable(pods: Pod[], now: Date, wide: boolean): string {
  return table(podHeaders(wide), podRows(pods, now, wide));
}

/** kubectl's READY: ready containers over the containers the spec asks for. */
export function podReady(pod: Pod): string {
  const ready = pod.status?.containerStatuses.filter((c) => c.ready).length ?? 0;
  return `${ready}/${pod.spec?.containers.length ?? 0}`;
}

export function podRestarts(pod: Pod): number {
  return pod.status?.containerStatuses.reduce((sum, c) => sum + c.restartCount, 0) ?? 0;
}

/** Published ports the way `docker ps` shows them: "10.0.0.5:31000->80/tcp, ...". Empty when there are none. */
export function formatPodPorts(ports: PortStatus[]): string {
  return ports.map((p) => `${p.hostIp || "0.0.0.0"}:${p.hostPort}->${p.containerPort}/${(p.protocol || "TCP").toLowerCase()}`).join(", ");
}

// ---------------------------------------------------------------------------------------------------------------
// Nodes

export function nodeHeaders(wide: boolean): string[] {
  const headers = ["NAME", "STATUS", "AGE", "VERSION"];
  return wide ? [...headers, "INTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME", "CPU", "MEMORY"] : headers;
}

export function nodeRows(nodes: Node[], now: Date, wide: boolean): string[][] {
  return nodes.map((node) => {
    const info = node.status?.nodeInfo;
    const age = formatAge(node.metadata?.creationTimestamp ?? "", now);
    const row = [node.metadata?.name ?? "", nodeStatus(node), age, info?.agentVersion || "<unknown>"];
    if (!wide) return row;
    const capacity = node.status?.capacity ?? {};
    return [
      ...row,
      nodeInternalIp(node) || NONE,
      info?.osImage || "<unknown>",
      info?.kernelVersion || "<unknown>",
      info?.containerRuntime || "<unknown>",
      capacity.cpu || NONE,
      capacity.memory || NONE,
    ];
  });
}

export function nodeTable(nodes: Node[], now: Date, wide: boolean): string {
  return table(nodeHeaders(wide), nodeRows(nodes, now, wide));
}

/** "Ready" only on a Ready=True condition; a cordoned node adds ",SchedulingDisabled" as kubectl does. */
export function nodeStatus(node: Node): string {
  const ready = node.status?.conditions.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  const status = ready ? "Ready" : "NotReady";
  return node.spec?.unschedulable ? `${status},SchedulingDisabled` : status;
}

export function nodeInternalIp(node: Node): string {
  return node.status?.addresses.find((a) => a.type === "InternalIP")?.address ?? "";
}

// ---------------------------------------------------------------------------------------------------------------
// Deployments

export function deploymentHeaders(wide: boolean): string[] {
  const headers = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"];
  return wide ? [...headers, "CONTAINERS", "IMAGES", "SELECTOR"] : headers;
}

export function deploymentRows(deployments: Deployment[], now: Date, wide: boolean): string[][] {
  return deployments.map((d) => {
    const status = d.status;
    const row = [
      d.metadata?.name ?? "",
      `${status?.readyReplicas ?? 0}/${desiredReplicas(d)}`,
      String(status?.updatedReplicas ?? 0),
      String(status?.availableReplicas ?? 0),
      formatAge(d.metadata?.creationTimestamp ?? "", now),
    ];
    if (!wide) return row;
    const containers = d.spec?.template?.spec?.containers ?? [];
    return [
      ...row,
      containers.map((c) => c.name).join(",") || NONE,
      containers.map((c) => c.image).join(",") || NONE,
      formatSelector(d.spec?.selector?.matchLabels ?? {}) || NONE,
    ];
  });
}

export function deploymentTable(deployments: Deployment[], now: Date, wide: boolean): string {
  return table(deploymentHeaders(wide), deploymentRows(deployments, now, wide));
}

/** spec.replicas, which the server defaults to 1 when it is left out. */
export function desiredReplicas(d: Deployment): number {
  return d.spec?.replicas ?? 1;
}

/** matchLabels as "k=v,k2=v2", keys sorted so that the output is stable (kubectl sorts them too). */
export function formatSelector(matchLabels: Record<string, string>): string {
  return formatMatchLabels(sortedRecord(matchLabels));
}

export function sortedRecord(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** kubectl's PORT(S) column: "80/TCP", "80:30080/TCP" for a NodePort. */
export function formatServicePorts(svc: Service): string {
  return (svc.spec?.ports ?? []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ""}/${p.protocol || "TCP"}`).join(",") || NONE;
}

export function serviceTable(services: Service[], now: Date, wide: boolean): string {
  const headers = ["NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE", ...(wide ? ["SELECTOR"] : [])];
  const rows = services.map((s) => [
    s.metadata?.name ?? "",
    s.spec?.type || "ClusterIP",
    s.spec?.clusterIp || NONE,
    formatServicePorts(s),
    formatAge(s.metadata?.creationTimestamp ?? "", now),
    ...(wide ? [formatSelector(s.spec?.selector ?? {}) || NONE] : []),
  ]);
  return table(headers, rows);
}

/** kubectl shows the first three ready addresses and "+ N more...". */
export function formatEndpointAddresses(e: Endpoints): string {
  const all = e.ports.flatMap((p) => p.ready.map((a) => `${a.ip}:${a.port}`));
  const unique = [...new Set(all)];
  if (unique.length === 0) return NONE;
  return unique.slice(0, 3).join(",") + (unique.length > 3 ? ` + ${unique.length - 3} more...` : "");
}

export function endpointsTable(endpoints: Endpoints[], now: Date): string {
  return table(["NAME", "ENDPOINTS", "AGE"], endpoints.map((e) => [e.metadata?.name ?? "", formatEndpointAddresses(e), formatAge(e.metadata?.creationTimestamp ?? "", now)]));
}

export function ingressTable(ingresses: Ingress[], now: Date): string {
  const rows = ingresses.map((i) => {
    const hosts = [...new Set((i.spec?.rules ?? []).map((r) => r.host || "*"))];
    const backends = (i.spec?.rules ?? []).flatMap((r) => r.paths.map((p) => `${r.host || "*"}${p.pathPrefix} → ${p.backend?.service}:${p.backend?.port}`));
    if (i.spec?.defaultBackend) backends.push(`default → ${i.spec.defaultBackend.service}:${i.spec.defaultBackend.port}`);
    return [i.metadata?.name ?? "", hosts.join(",") || "*", backends.join(", "), formatAge(i.metadata?.creationTimestamp ?? "", now)];
  });
  return table(["NAME", "HOSTS", "RULES", "AGE"], rows);
}

// ---------------------------------------------------------------------------------------------------------------
// JSON and YAML

/** The server stamps every object with this (master/kinds.ts); the CLI, an API client, keeps off master code. */
const API_VERSION = "flotilla.io/v1";

export type ResourceKind = "Pod" | "Node" | "Deployment" | "Service" | "Endpoints" | "Ingress";

export interface ObjectOfKind {
  Pod: Pod;
  Node: Node;
  Deployment: Deployment;
  Service: Service;
  Endpoints: Endpoints;
  Ingress: Ingress;
}

const TO_JSON: { [K in ResourceKind]: (object: ObjectOfKind[K]) => unknown } = {
  Pod: (pod) => Pod.toJSON(pod),
  Node: (node) => Node.toJSON(node),
  Deployment: (deployment) => Deployment.toJSON(deployment),
  Service: (svc) => Service.toJSON(svc),
  Endpoints: (e) => Endpoints.toJSON(e),
  Ingress: (ing) => Ingress.toJSON(ing),
};

/**
 * What `-o json|yaml` prints: the object itself when one was asked for by name, else kubectl's
 * `{apiVersion: v1, kind: List, items}`. Each object leads with apiVersion and kind, so the output can be applied back.
 */
export function outputDocument<K extends ResourceKind>(kind: K, objects: ObjectOfKind[K][], single: boolean): Record<string, unknown> {
  const toJson = TO_JSON[kind];
  const documents = objects.map((o) => ({ apiVersion: API_VERSION, kind, ...asRecord(toJson(o)) }));
  if (!single) return { apiVersion: "v1", kind: "List", items: documents };
  if (documents.length !== 1) throw new RangeError(`expected exactly one ${kind} for single-object output, got ${documents.length}`);
  return documents[0];
}

/** ts-proto's toJSON returns `unknown`; it is always a plain object for a message. */
function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null ? { ...value } : {};
}

/** kubectl indents JSON by four spaces. */
export function toJsonOutput<K extends ResourceKind>(kind: K, objects: ObjectOfKind[K][], single: boolean): string {
  return JSON.stringify(outputDocument(kind, objects, single), null, 4) + "\n";
}

/** Block-style YAML with kubectl's unindented sequences and no line folding (long values stay greppable). */
export function toYamlOutput<K extends ResourceKind>(kind: K, objects: ObjectOfKind[K][], single: boolean): string {
  return stringify(outputDocument(kind, objects, single), { indentSeq: false, lineWidth: 0 });
}

// ---------------------------------------------------------------------------------------------------------------
// Empty results

const CLUSTER_SCOPED = new Set(["nodes", "node", "no"]);

/**
 * kubectl's note for an empty `get` (it writes it to stderr): names the namespace for namespaced kinds, nothing
 * for cluster-scoped ones or across all namespaces (`namespace` empty or undefined).
 */
export function emptyMessage(kindPlural: string, namespace: string | undefined): string {
  if (!namespace || CLUSTER_SCOPED.has(kindPlural.toLowerCase())) return "No resources found";
  return `No resources found in ${namespace} namespace.`;
}
