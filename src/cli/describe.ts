// `flotilla describe`, pure: multi-line reports in kubectl's describe layout. Labels end in ':' and their values
// line up within each section (the tabwriter rules in format.ts); sections nest by two spaces per level.
import type { Condition } from "../gen/flotilla/v1/meta.js";
import type { Deployment } from "../gen/flotilla/v1/deployment.js";
import type { Node } from "../gen/flotilla/v1/node.js";
import type { Container, ContainerState, ContainerStatus, Pod } from "../gen/flotilla/v1/pod.js";
import type { Endpoints, Service } from "../gen/flotilla/v1/service.js";
import { displayStatus, isPodTerminal } from "../api/pod-status.js";
import { formatBytes, formatCpuMillis, parseBytes, parseCpuMillis } from "../api/quantity.js";
import { alignTabs, cellText, desiredReplicas, formatAge, formatSelector, podReady, podRestarts, sortedRecord } from "./format.js";

const NONE = "<none>";
const INDENT = "  ";
/** kubectl's describe tabwriter pads each column by two spaces. */
const DESCRIBE_PADDING = 2;

/** Collects describe lines: a nesting level (two spaces each) and tab-separated cells, aligned on output. */
class DescribeWriter {
  private readonly lines: string[] = [];

  /** A line of cells; the first cell of each line in a run of lines lines up. */
  row(level: number, ...cells: string[]): void {
    this.lines.push(INDENT.repeat(level) + cells.map(cellText).join("\t"));
  }

  /** "Label:  value". */
  field(level: number, label: string, value: string): void {
    this.row(level, `${label}:`, value);
  }

  /** A section heading; having no value cell, it also starts a new alignment block below it. */
  heading(level: number, label: string): void {
    this.row(level, `${label}:`);
  }

  text(): string {
    return alignTabs(this.lines.join("\n"), DESCRIBE_PADDING) + "\n";
  }
}

/** kubectl prints times as RFC 1123 with a numeric zone; UTC keeps the output the same on every machine. */
export function formatTimestamp(timestamp: string): string {
  const ms = timestamp ? Date.parse(timestamp) : NaN;
  if (Number.isNaN(ms)) return "<unknown>";
  return new Date(ms).toUTCString().replace(/ GMT$/, " +0000");
}

/** A map one entry a line, the first beside the label and the rest under the first (kubectl's Labels:). */
function writeMap(w: DescribeWriter, level: number, label: string, map: Record<string, string>, separator: string): void {
  const entries = Object.entries(sortedRecord(map));
  if (entries.length === 0) return w.field(level, label, NONE);
  entries.forEach(([key, value], i) => w.row(level, i === 0 ? `${label}:` : "", `${key}${separator}${value}`));
}

/** A small table under a heading: a header row, a row of dashes, then the rows (or `<none>`). */
function writeTable(w: DescribeWriter, level: number, headers: string[], rows: string[][]): void {
  w.row(level, ...headers);
  w.row(level, ...headers.map((h) => "-".repeat(h.length)));
  for (const row of rows) w.row(level, ...row);
}

/** Type/Status/Reason/Message of each condition. */
function writeConditions(w: DescribeWriter, conditions: Condition[]): void {
  if (conditions.length === 0) return w.field(0, "Conditions", NONE);
  w.heading(0, "Conditions");
  writeTable(w, 1, ["Type", "Status", "Reason", "Message"], conditions.map((c) => [c.type, c.status, c.reason, c.message]));
}

// ---------------------------------------------------------------------------------------------------------------
// Containers (a pod's, or a deployment's pod template's)

/** In a pod template kubectl nests the container list one space deeper; `inTemplate` keeps that habit. */
function writeContainers(w: DescribeWriter, containers: Container[], statuses: ContainerStatus[] | undefined, inTemplate: boolean): void {
  const prefix = inTemplate ? INDENT : "";
  w.row(0, `${prefix}Containers:${containers.length === 0 ? ` ${NONE}` : ""}`);
  for (const container of containers) {
    w.row(1, `${inTemplate ? " " : ""}${container.name}:`);
    const status = statuses?.find((s) => s.name === container.name);
    writeContainerBasics(w, container, status);
    writeLines(w, "Command", container.command);
    writeLines(w, "Args", container.args);
    if (status) writeContainerStatus(w, status);
    writeQuantities(w, "Limits", container.resources?.limits ?? {});
    writeQuantities(w, "Requests", container.resources?.requests ?? {});
    writeEnvironment(w, container);
  }
}

function writeContainerBasics(w: DescribeWriter, container: Container, status: ContainerStatus | undefined): void {
  if (status?.containerId) w.field(2, "Container ID", status.containerId);
  w.field(2, "Image", container.image || NONE);
  const ports = container.ports.map((p) => `${p.containerPort}/${p.protocol || "TCP"}`);
  const hostPorts = container.ports.map((p) => `${p.hostPort}/${p.protocol || "TCP"}`);
  w.field(2, ports.length > 1 ? "Ports" : "Port", ports.join(", ") || NONE);
  w.field(2, hostPorts.length > 1 ? "Host Ports" : "Host Port", hostPorts.join(", ") || NONE);
}

/** Command and Args: one element a line, as kubectl shows them, so that quoting is never in doubt. */
function writeLines(w: DescribeWriter, label: string, values: string[]): void {
  if (values.length === 0) return;
  w.heading(2, label);
  for (const value of values) for (const line of value.split("\n")) w.row(3, line);
}

function writeContainerStatus(w: DescribeWriter, status: ContainerStatus): void {
  writeContainerState(w, "State", status.state);
  const last = status.lastState;
  if (last && (last.running || last.waiting || last.terminated)) writeContainerState(w, "Last State", last);
  w.field(2, "Ready", status.ready ? "True" : "False");
  w.field(2, "Restart Count", String(status.restartCount));
}

function writeContainerState(w: DescribeWriter, label: string, state: ContainerState | undefined): void {
  if (state?.running) {
    w.field(2, label, "Running");
    w.field(3, "Started", formatTimestamp(state.running.startedAt));
  } else if (state?.terminated) {
    const t = state.terminated;
    w.field(2, label, "Terminated");
    if (t.reason) w.field(3, "Reason", t.reason);
    if (t.message) w.field(3, "Message", t.message);
    w.field(3, "Exit Code", String(t.exitCode));
    w.field(3, "Started", formatTimestamp(t.startedAt));
    w.field(3, "Finished", formatTimestamp(t.finishedAt));
  } else {
    w.field(2, label, "Waiting");
    if (state?.waiting?.reason) w.field(3, "Reason", state.waiting.reason);
    if (state?.waiting?.message) w.field(3, "Message", state.waiting.message);
  }
}

function writeQuantities(w: DescribeWriter, label: string, quantities: Record<string, string>): void {
  const entries = Object.entries(sortedRecord(quantities));
  if (entries.length === 0) return;
  w.heading(2, label);
  for (const [name, quantity] of entries) w.field(3, name, quantity);
}

function writeEnvironment(w: DescribeWriter, container: Container): void {
  if (container.env.length === 0) return w.field(2, "Environment", NONE);
  w.heading(2, "Environment");
  for (const env of container.env) w.field(3, env.name, env.value);
}

// ---------------------------------------------------------------------------------------------------------------
// Pods

export function describePod(pod: Pod, now: Date): string {
  const w = new DescribeWriter();
  writePodSummary(w, pod);
  writePodPorts(w, pod);
  writeContainers(w, pod.spec?.containers ?? [], pod.status?.containerStatuses ?? [], false);
  writeConditions(w, pod.status?.conditions ?? []);
  writeEvents(w, podEvents(pod, now));
  return w.text();
}

function writePodSummary(w: DescribeWriter, pod: Pod): void {
  const meta = pod.metadata;
  const status = pod.status;
  const nodeName = pod.spec?.nodeName ?? "";
  w.field(0, "Name", meta?.name ?? "");
  w.field(0, "Namespace", meta?.namespace ?? "");
  w.field(0, "Node", nodeName ? [nodeName, status?.hostIp].filter(Boolean).join("/") : NONE);
  if (status?.startTime) w.field(0, "Start Time", formatTimestamp(status.startTime));
  writeMap(w, 0, "Labels", meta?.labels ?? {}, "=");
  writeMap(w, 0, "Annotations", meta?.annotations ?? {}, ": ");
  w.field(0, "Status", status?.phase || "Pending");
  if (status?.reason) w.field(0, "Reason", status.reason);
  if (status?.message) w.field(0, "Message", status.message);
  w.field(0, "IP", status?.hostIp || NONE);
  const controller = meta?.ownerReferences.find((r) => r.controller);
  if (controller) w.field(0, "Controlled By", `${controller.kind}/${controller.name}`);
  writeMap(w, 0, "Node-Selectors", pod.spec?.nodeSelector ?? {}, "=");
}

/** Where each container port answers, as the node published it. */
function writePodPorts(w: DescribeWriter, pod: Pod): void {
  const ports = pod.status?.ports ?? [];
  const manyContainers = (pod.spec?.containers.length ?? 0) > 1;
  const lines = ports.map((p) => {
    const mapping = `${p.hostIp || "0.0.0.0"}:${p.hostPort} -> ${p.containerPort}/${p.protocol || "TCP"}`;
    return manyContainers && p.container ? `${mapping} (${p.container})` : mapping;
  });
  if (lines.length === 0) return w.field(0, "Ports", NONE);
  lines.forEach((line, i) => w.row(0, i === 0 ? "Ports:" : "", line));
}

interface DescribeEvent {
  type: "Normal" | "Warning";
  reason: string;
  age: string;
  from: string;
  message: string;
}

/**
 * Flotilla keeps no Event objects, so the pod's PodScheduled condition stands in for the scheduler's events: above
 * all, a Pending pod's FailedScheduling message says why no node took it.
 */
function podEvents(pod: Pod, now: Date): DescribeEvent[] {
  const scheduled = pod.status?.conditions.find((c) => c.type === "PodScheduled");
  if (!scheduled) return [];
  const age = formatAge(scheduled.lastTransitionTime, now);
  if (scheduled.status === "False") {
    return [{ type: "Warning", reason: "FailedScheduling", age, from: "scheduler", message: scheduled.message || scheduled.reason }];
  }
  const meta = pod.metadata;
  const message = `Successfully assigned ${meta?.namespace ?? ""}/${meta?.name ?? ""} to ${pod.spec?.nodeName ?? ""}`;
  return [{ type: "Normal", reason: "Scheduled", age, from: "scheduler", message }];
}

function writeEvents(w: DescribeWriter, events: DescribeEvent[]): void {
  if (events.length === 0) return w.field(0, "Events", NONE);
  w.heading(0, "Events");
  writeTable(w, 1, ["Type", "Reason", "Age", "From", "Message"], events.map((e) => [e.type, e.reason, e.age, e.from, e.message]));
}

// ---------------------------------------------------------------------------------------------------------------
// Nodes

export function describeNode(node: Node, pods: Pod[], now: Date): string {
  const w = new DescribeWriter();
  const meta = node.metadata;
  const status = node.status;
  w.field(0, "Name", meta?.name ?? "");
  writeMap(w, 0, "Labels", meta?.labels ?? {}, "=");
  writeMap(w, 0, "Annotations", meta?.annotations ?? {}, ": ");
  w.field(0, "CreationTimestamp", formatTimestamp(meta?.creationTimestamp ?? ""));
  w.field(0, "Unschedulable", node.spec?.unschedulable ? "true" : "false");
  writeNodeConditions(w, status?.conditions ?? []);
  writeNodeAddresses(w, node);
  writeResourceMap(w, "Capacity", status?.capacity ?? {});
  writeResourceMap(w, "Allocatable", status?.allocatable ?? {});
  writeResourceMap(w, "Usage", status?.usage ?? {});
  writeSystemInfo(w, node);
  const nodePods = podsOnNode(pods, meta?.name ?? "");
  writeNodePods(w, node, nodePods, now);
  writeAllocatedResources(w, node, nodePods);
  return w.text();
}

function writeNodeConditions(w: DescribeWriter, conditions: Condition[]): void {
  if (conditions.length === 0) return w.field(0, "Conditions", NONE);
  w.heading(0, "Conditions");
  const headers = ["Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason", "Message"];
  const rows = conditions.map((c) => [
    c.type,
    c.status,
    formatTimestamp(c.lastHeartbeatTime),
    formatTimestamp(c.lastTransitionTime),
    c.reason,
    c.message,
  ]);
  writeTable(w, 1, headers, rows);
}

function writeNodeAddresses(w: DescribeWriter, node: Node): void {
  const addresses = node.status?.addresses ?? [];
  if (addresses.length === 0) return w.field(0, "Addresses", NONE);
  w.heading(0, "Addresses");
  for (const a of addresses) w.field(1, a.type, a.address);
}

function writeResourceMap(w: DescribeWriter, label: string, resources: Record<string, string>): void {
  const entries = Object.entries(sortedRecord(resources));
  if (entries.length === 0) return w.field(0, label, NONE);
  w.heading(0, label);
  for (const [name, quantity] of entries) w.field(1, name, quantity);
}

function writeSystemInfo(w: DescribeWriter, node: Node): void {
  const info = node.status?.nodeInfo;
  if (!info) return w.field(0, "System Info", NONE);
  w.heading(0, "System Info");
  w.field(1, "Operating System", info.os);
  w.field(1, "OS Image", info.osImage);
  w.field(1, "Kernel Version", info.kernelVersion);
  w.field(1, "Architecture", info.architecture);
  w.field(1, "CPU Model", info.cpuModel);
  w.field(1, "CPU Cores", String(info.cpuCores));
  w.field(1, "Container Runtime Version", info.containerRuntime);
  w.field(1, "Agent Version", info.agentVersion);
}

/** Pods bound to the node that still hold its resources, in a stable order. */
function podsOnNode(pods: Pod[], nodeName: string): Pod[] {
  const key = (p: Pod) => `${p.metadata?.namespace ?? ""}/${p.metadata?.name ?? ""}`;
  return pods
    .filter((p) => nodeName !== "" && p.spec?.nodeName === nodeName && !isPodTerminal(p))
    .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function writeNodePods(w: DescribeWriter, node: Node, pods: Pod[], now: Date): void {
  const allocatable = nodeAllocatable(node);
  // The count sits in the same column as the table's Namespace cells, as in kubectl.
  w.row(0, "Non-terminated Pods:", `(${pods.length} in total)`);
  const headers = ["Namespace", "Name", "CPU Requests", "CPU Limits", "Memory Requests", "Memory Limits", "Age"];
  const rows = pods.map((pod) => {
    const r = podResources(pod);
    return [
      pod.metadata?.namespace ?? "",
      pod.metadata?.name ?? "",
      withPercent(formatCpuMillis(r.cpuRequestMillis), r.cpuRequestMillis, allocatable.cpuMillis),
      withPercent(formatCpuMillis(r.cpuLimitMillis), r.cpuLimitMillis, allocatable.cpuMillis),
      withPercent(formatBytes(r.memoryRequestBytes), r.memoryRequestBytes, allocatable.memoryBytes),
      withPercent(formatBytes(r.memoryLimitBytes), r.memoryLimitBytes, allocatable.memoryBytes),
      formatAge(pod.metadata?.creationTimestamp ?? "", now),
    ];
  });
  writeTable(w, 1, headers, rows);
}

/** Sums of the pods' requests and limits against what the node can allocate, as kubectl reports them. */
function writeAllocatedResources(w: DescribeWriter, node: Node, pods: Pod[]): void {
  const allocatable = nodeAllocatable(node);
  const total = pods.map(podResources).reduce(addPodResources, NO_RESOURCES);
  w.heading(0, "Allocated resources");
  w.row(1, "(Total limits may be over 100 percent, i.e., overcommitted.)");
  writeTable(w, 1, ["Resource", "Requests", "Limits"], [
    [
      "cpu",
      withPercent(formatCpuMillis(total.cpuRequestMillis), total.cpuRequestMillis, allocatable.cpuMillis),
      withPercent(formatCpuMillis(total.cpuLimitMillis), total.cpuLimitMillis, allocatable.cpuMillis),
    ],
    [
      "memory",
      withPercent(formatBytes(total.memoryRequestBytes), total.memoryRequestBytes, allocatable.memoryBytes),
      withPercent(formatBytes(total.memoryLimitBytes), total.memoryLimitBytes, allocatable.memoryBytes),
    ],
  ]);
}

/** "750m (37%)": kubectl truncates the percentage, and shows 0% against an unknown (zero) allocatable. */
function withPercent(formatted: string, amount: number, allocatable: number): string {
  const percent = allocatable > 0 ? Math.trunc((amount / allocatable) * 100) : 0;
  return `${formatted} (${percent}%)`;
}

export interface PodResources {
  cpuRequestMillis: number;
  cpuLimitMillis: number;
  memoryRequestBytes: number;
  memoryLimitBytes: number;
}

const NO_RESOURCES: PodResources = { cpuRequestMillis: 0, cpuLimitMillis: 0, memoryRequestBytes: 0, memoryLimitBytes: 0 };

function addPodResources(a: PodResources, b: PodResources): PodResources {
  return {
    cpuRequestMillis: a.cpuRequestMillis + b.cpuRequestMillis,
    cpuLimitMillis: a.cpuLimitMillis + b.cpuLimitMillis,
    memoryRequestBytes: a.memoryRequestBytes + b.memoryRequestBytes,
    memoryLimitBytes: a.memoryLimitBytes + b.memoryLimitBytes,
  };
}

/**
 * A pod's requests and limits summed over its containers. A container with only a limit requests that limit:
 * Kubernetes defaults it so, and the scheduler (master/scheduler/resources.ts) counts it so, so the node's
 * percentages here agree with its decisions.
 */
export function podResources(pod: Pod): PodResources {
  return (pod.spec?.containers ?? []).reduce((sum, c) => {
    const requests = c.resources?.requests ?? {};
    const limits = c.resources?.limits ?? {};
    return addPodResources(sum, {
      cpuRequestMillis: quantityOrZero(parseCpuMillis, requests.cpu ?? limits.cpu),
      cpuLimitMillis: quantityOrZero(parseCpuMillis, limits.cpu),
      memoryRequestBytes: quantityOrZero(parseBytes, requests.memory ?? limits.memory),
      memoryLimitBytes: quantityOrZero(parseBytes, limits.memory),
    });
  }, NO_RESOURCES);
}

/** The server validates quantities; should a bad one slip through, describe still shows the rest. */
function quantityOrZero(parse: (text: string) => number, text: string | undefined): number {
  if (!text) return 0;
  try {
    return parse(text);
  } catch {
    return 0;
  }
}

/** Allocatable, falling back to capacity for a node that reports only that (as the scheduler does). */
function nodeAllocatable(node: Node): { cpuMillis: number; memoryBytes: number } {
  const allocatable = node.status?.allocatable ?? {};
  const capacity = node.status?.capacity ?? {};
  return {
    cpuMillis: quantityOrZero(parseCpuMillis, allocatable.cpu ?? capacity.cpu),
    memoryBytes: quantityOrZero(parseBytes, allocatable.memory ?? capacity.memory),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Deployments

export function describeDeployment(d: Deployment, pods: Pod[], now: Date): string {
  const w = new DescribeWriter();
  const meta = d.metadata;
  w.field(0, "Name", meta?.name ?? "");
  w.field(0, "Namespace", meta?.namespace ?? "");
  w.field(0, "CreationTimestamp", formatTimestamp(meta?.creationTimestamp ?? ""));
  writeMap(w, 0, "Labels", meta?.labels ?? {}, "=");
  writeMap(w, 0, "Annotations", meta?.annotations ?? {}, ": ");
  w.field(0, "Selector", formatSelector(d.spec?.selector?.matchLabels ?? {}) || NONE);
  w.field(0, "Replicas", replicasSummary(d));
  w.heading(0, "Pod Template");
  writeMap(w, 1, "Labels", d.spec?.template?.metadata?.labels ?? {}, "=");
  writeContainers(w, d.spec?.template?.spec?.containers ?? [], undefined, true);
  const conditions = d.status?.conditions ?? [];
  if (conditions.length > 0) writeConditions(w, conditions);
  writeOwnedPods(w, ownedPods(d, pods), now);
  return w.text();
}

/**
 * "3 desired | 3 updated | 3 total | 2 available | 1 unavailable". Unavailable counts against the larger of
 * desired and total, so pods not created yet count as unavailable, as a Kubernetes roll-out reports them.
 */
export function replicasSummary(d: Deployment): string {
  const desired = desiredReplicas(d);
  const status = d.status;
  const total = status?.replicas ?? 0;
  const available = status?.availableReplicas ?? 0;
  const unavailable = Math.max(0, Math.max(desired, total) - available);
  return `${desired} desired | ${status?.updatedReplicas ?? 0} updated | ${total} total | ${available} available | ${unavailable} unavailable`;
}

function ownedPods(d: Deployment, pods: Pod[]): Pod[] {
  const uid = d.metadata?.uid;
  if (!uid) return [];
  return pods.filter((p) => p.metadata?.ownerReferences.some((r) => r.uid === uid));
}

function writeOwnedPods(w: DescribeWriter, pods: Pod[], now: Date): void {
  if (pods.length === 0) return w.field(0, "Pods", NONE);
  w.heading(0, "Pods");
  const rows = pods.map((p) => [
    p.metadata?.name ?? "",
    podReady(p),
    displayStatus(p),
    String(podRestarts(p)),
    p.spec?.nodeName || NONE,
    formatAge(p.metadata?.creationTimestamp ?? "", now),
  ]);
  writeTable(w, 1, ["Name", "Ready", "Status", "Restarts", "Node", "Age"], rows);
}

/** The service, its virtual IP and NodePorts, and where its traffic goes: each port's ready and not-ready pods. */
export function describeService(svc: Service, endpoints: Endpoints | undefined): string {
  const w = new DescribeWriter();
  const meta = svc.metadata;
  w.field(0, "Name", meta?.name ?? "");
  w.field(0, "Namespace", meta?.namespace ?? "");
  writeMap(w, 0, "Labels", meta?.labels ?? {}, "=");
  w.field(0, "Selector", formatSelector(svc.spec?.selector ?? {}) || NONE);
  w.field(0, "Type", svc.spec?.type || "ClusterIP");
  w.field(0, "IP", svc.spec?.clusterIp || NONE);
  w.field(0, "Session Affinity", svc.spec?.sessionAffinity || "None");
  for (const p of svc.spec?.ports ?? []) {
    const label = p.name || "<unset>";
    w.field(0, "Port", `${label}  ${p.port}/${p.protocol || "TCP"}`);
    w.field(0, "TargetPort", `${p.targetPort || p.port}/${p.protocol || "TCP"}`);
    if (p.nodePort) w.field(0, "NodePort", `${label}  ${p.nodePort}/${p.protocol || "TCP"}`);
    const ep = endpoints?.ports.find((e) => e.name === p.name && e.port === p.port);
    const ready = (ep?.ready ?? []).map((a) => `${a.ip}:${a.port} (${a.pod} on ${a.node})`);
    const notReady = (ep?.notReady ?? []).map((a) => `${a.ip}:${a.port} (${a.pod} on ${a.node}, not ready)`);
    const all = [...ready, ...notReady];
    if (all.length === 0) w.field(0, "Endpoints", NONE);
    else {
      w.heading(0, "Endpoints");
      for (const line of all) w.row(1, line);
    }
  }
  return w.text();
}
