import { describe, expect, it } from "vitest";
import { Node } from "../../../src/gen/flotilla/v1/node.js";
import { Pod } from "../../../src/gen/flotilla/v1/pod.js";
import { cpuFits, hostPortsFree, INSUFFICIENT_CPU, INSUFFICIENT_MEMORY, NODE_NOT_READY, type NodeInfo } from "../../../src/master/scheduler/filter.js";
import { podRequests } from "../../../src/master/scheduler/resources.js";
import { schedulePod } from "../../../src/master/scheduler/schedule.js";
import { score } from "../../../src/master/scheduler/score.js";

function node(name: string, cpu: string, memory: string, ready = true, extra: Partial<Node> = {}): Node {
  return Node.fromPartial({
    metadata: { name, labels: { zone: name.endsWith("1") ? "a" : "b" } },
    spec: { unschedulable: false },
    status: { allocatable: { cpu, memory }, conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
    ...extra,
  });
}

function info(n: Node, usedCpu = 0, usedMemory = 0, hostPorts: string[] = []): NodeInfo {
  const alloc = { cpuMillis: Number(n.status!.allocatable.cpu) * 1000, memoryBytes: Number(n.status!.allocatable.memory) };
  return { node: n, allocatable: alloc, requested: { cpuMillis: usedCpu, memoryBytes: usedMemory }, hostPorts: new Set(hostPorts) };
}

function pod(cpu?: string, memory?: string, extra: Record<string, unknown> = {}): Pod {
  const requests: Record<string, string> = {};
  if (cpu) requests.cpu = cpu;
  if (memory) requests.memory = memory;
  return Pod.fromJSON({ metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "x", resources: { requests }, ...extra }] } });
}

describe("scheduler filter", () => {
  it("finds CPU insufficient only when a request exceeds what is left", () => {
    const n = info(node("n1", "2", "1000"), 1500);
    expect(cpuFits(pod("500m"), podRequests(pod("500m")), n)).toBeUndefined();
    expect(cpuFits(pod("501m"), podRequests(pod("501m")), n)).toBe(INSUFFICIENT_CPU);
  });

  it("treats a limit without a request as the request", () => {
    const p = Pod.fromJSON({ metadata: { name: "p" }, spec: { containers: [{ name: "c", image: "x", resources: { limits: { cpu: "1", memory: "1Gi" } } }] } });
    expect(podRequests(p)).toEqual({ cpuMillis: 1000, memoryBytes: 1024 ** 3 });
  });

  it("refuses a host port already taken on the node", () => {
    const p = pod(undefined, undefined, { ports: [{ containerPort: 80, hostPort: 8080, protocol: "TCP" }] });
    expect(hostPortsFree(p, podRequests(p), info(node("n1", "1", "1"), 0, 0, ["TCP/8080"]))).toBeDefined();
    expect(hostPortsFree(p, podRequests(p), info(node("n1", "1", "1"), 0, 0, ["UDP/8080"]))).toBeUndefined();
  });
});

describe("scheduler decision", () => {
  const nodes = [info(node("n1", "4", "8000"), 3000, 1000), info(node("n2", "4", "8000"), 1000, 1000), info(node("n3", "8", "8000", false))];

  it("spreads with least-allocated: the emptier ready node wins", () => {
    expect(schedulePod(pod("500m", "100"), nodes, "least-allocated")).toMatchObject({ ok: true, nodeName: "n2" });
  });

  it("packs with most-allocated: the fuller node that fits wins", () => {
    expect(schedulePod(pod("500m", "100"), nodes, "most-allocated")).toMatchObject({ ok: true, nodeName: "n1" });
  });

  it("explains why a pod fits nowhere, counting reasons", () => {
    const decision = schedulePod(pod("100", "100"), nodes, "least-allocated");
    expect(decision).toEqual({ ok: false, reason: "Unschedulable", message: `0/3 nodes are available: 2 ${INSUFFICIENT_CPU}, 1 ${NODE_NOT_READY}.` });
    const memoryBound = schedulePod(pod("100m", "7500"), nodes, "least-allocated");
    expect(memoryBound).toMatchObject({ ok: false, message: expect.stringContaining(`2 ${INSUFFICIENT_MEMORY}`) });
  });

  it("honours the node selector and cordoned nodes", () => {
    const selecting = Pod.fromJSON({ metadata: { name: "p" }, spec: { nodeSelector: { zone: "a" }, containers: [{ name: "c", image: "x" }] } });
    expect(schedulePod(selecting, nodes, "least-allocated")).toMatchObject({ ok: true, nodeName: "n1" });
    const cordoned = [info(node("n1", "4", "8000", true, { spec: { unschedulable: true } }))];
    expect(schedulePod(pod("1"), cordoned, "least-allocated")).toMatchObject({ ok: false, message: expect.stringContaining("unschedulable") });
  });

  it("says so when no node has joined", () => {
    expect(schedulePod(pod(), [], "least-allocated")).toMatchObject({ ok: false, message: expect.stringContaining("no nodes have joined") });
  });

  it("breaks ties by node name, deterministically", () => {
    const twins = [info(node("b", "1", "100")), info(node("a", "1", "100"))];
    expect(schedulePod(pod("100m"), twins, "least-allocated")).toMatchObject({ nodeName: "a" });
  });

  it("scores 0 to 100", () => {
    const empty = info(node("n", "1", "100"));
    expect(score("least-allocated", { cpuMillis: 0, memoryBytes: 0 }, empty)).toBe(100);
    expect(score("most-allocated", { cpuMillis: 1000, memoryBytes: 100 }, empty)).toBe(100);
  });
});
