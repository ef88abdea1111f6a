// What a node reports about itself, read with systeminformation. Static facts (CPU model, memory size, OS) are
// read once and cached, since some calls take most of a second; usage is sampled at each heartbeat.
import { hostname } from "node:os";
import si from "systeminformation";
import type { Node } from "../gen/flotilla/v1/node.js";
import { formatBytes } from "../api/quantity.js";
import { VERSION } from "../api/version.js";

export interface HardwareFacts {
  hostname: string;
  cpuCores: number;
  cpuModel: string;
  memoryBytes: number;
  diskBytes: number;
  os: string;
  osImage: string;
  kernelVersion: string;
  architecture: string;
  addresses: string[];
}

/** Node's architecture names as Kubernetes (and Go) spell them, so kubernetes.io/arch selectors carry over. */
const GO_ARCH: Record<string, string> = { x64: "amd64", ia32: "386", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x" };

/** Kubernetes' default pod limit per node. */
const MAX_PODS = "110";

export async function readHardware(dataDir: string): Promise<HardwareFacts> {
  const [cpu, mem, osInfo, disks, interfaces] = await Promise.all([si.cpu(), si.mem(), si.osInfo(), si.fsSize(), si.networkInterfaces()]);
  const disk = [...disks].filter((d) => dataDir.startsWith(d.mount)).sort((a, b) => b.mount.length - a.mount.length)[0];
  const list = Array.isArray(interfaces) ? interfaces : [interfaces];
  return {
    hostname: hostname(),
    cpuCores: cpu.cores,
    cpuModel: [cpu.manufacturer, cpu.brand].filter(Boolean).join(" ").trim() || "unknown",
    memoryBytes: mem.total,
    diskBytes: disk?.size ?? 0,
    os: osInfo.platform,
    osImage: osInfo.distro ? `${osInfo.distro} ${osInfo.release}`.trim() : osInfo.platform,
    kernelVersion: osInfo.kernel,
    architecture: GO_ARCH[osInfo.arch] ?? osInfo.arch,
    addresses: list.filter((i) => i.ip4 && !i.internal).map((i) => i.ip4),
  };
}

export function describeNode(name: string, address: string, facts: HardwareFacts, runtimeVersion: string, labels: Record<string, string>): Node {
  const capacity = {
    cpu: String(facts.cpuCores),
    memory: formatBytes(facts.memoryBytes),
    "ephemeral-storage": formatBytes(facts.diskBytes),
    pods: MAX_PODS,
  };
  return {
    apiVersion: "flotilla.io/v1",
    kind: "Node",
    metadata: {
      name,
      namespace: "",
      uid: "",
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": facts.os,
        "kubernetes.io/arch": facts.architecture,
        ...labels,
      },
      annotations: {},
      resourceVersion: "",
      generation: 0n,
      ownerReferences: [],
      creationTimestamp: "",
      generateName: "",
    },
    spec: { unschedulable: false },
    status: {
      capacity,
      allocatable: { ...capacity },
      usage: {},
      conditions: [],
      addresses: [
        { type: "InternalIP", address },
        { type: "Hostname", address: facts.hostname },
      ],
      nodeInfo: {
        os: facts.os,
        osImage: facts.osImage,
        kernelVersion: facts.kernelVersion,
        architecture: facts.architecture,
        cpuModel: facts.cpuModel,
        cpuCores: facts.cpuCores,
        agentVersion: VERSION,
        containerRuntime: runtimeVersion,
        hostname: facts.hostname,
      },
      daemonEndpoint: "",
    },
  };
}

/** CPU in use (millicores) and memory in use (bytes), as quantities. */
export async function sampleUsage(): Promise<Record<string, string>> {
  const [load, mem] = await Promise.all([si.currentLoad(), si.mem()]);
  const cores = load.cpus.length || 1;
  return {
    cpu: `${Math.round((load.currentLoad / 100) * cores * 1000)}m`,
    memory: formatBytes(mem.active),
  };
}
