import { describe, expect, it } from "vitest";
import { Deployment } from "../../src/gen/flotilla/v1/deployment.js";
import { Node } from "../../src/gen/flotilla/v1/node.js";
import { Pod } from "../../src/gen/flotilla/v1/pod.js";
import { describeDeployment, describeNode, describePod, formatTimestamp, podResources, replicasSummary } from "../../src/cli/describe.js";

const NOW = new Date("2024-05-01T12:00:00Z");

const WEB_CONTAINER = {
  name: "web",
  image: "nginx:1.25",
  command: ["nginx"],
  args: ["-g", "daemon off;"],
  env: [{ name: "FOO", value: "bar" }],
  ports: [{ containerPort: 80, protocol: "TCP" }],
  resources: { requests: { cpu: "250m", memory: "64Mi" }, limits: { memory: "128Mi", cpu: "500m" } },
};

const runningPod = Pod.fromPartial({
  apiVersion: "flotilla.io/v1",
  kind: "Pod",
  metadata: {
    name: "web-7f9c-abcde",
    namespace: "default",
    uid: "pod-uid-1",
    labels: { "pod-template-hash": "7f9c", app: "web" },
    ownerReferences: [{ apiVersion: "flotilla.io/v1", kind: "Deployment", name: "web", uid: "dep-uid", controller: true }],
    creationTimestamp: "2024-05-01T11:55:00Z",
  },
  spec: { nodeName: "node-1", containers: [WEB_CONTAINER] },
  status: {
    phase: "Running",
    hostIp: "10.0.0.5",
    startTime: "2024-05-01T11:55:02Z",
    conditions: [
      { type: "PodScheduled", status: "True", reason: "Scheduled", message: "assigned to node-1", lastTransitionTime: "2024-05-01T11:55:01Z" },
      { type: "Ready", status: "True", lastTransitionTime: "2024-05-01T11:56:00Z" },
    ],
    containerStatuses: [
      {
        name: "web",
        ready: true,
        restartCount: 2,
        image: "nginx:1.25",
        containerId: "docker://0123456789ab",
        state: { running: { startedAt: "2024-05-01T11:56:00Z" } },
        lastState: { terminated: { exitCode: 1, reason: "Error", startedAt: "2024-05-01T11:55:30Z", finishedAt: "2024-05-01T11:55:59Z" } },
      },
    ],
    ports: [{ container: "web", containerPort: 80, hostIp: "10.0.0.5", hostPort: 31000, protocol: "TCP" }],
  },
});

const SCHEDULING_MESSAGE = "0/2 nodes are available: 2 Insufficient cpu.";

const pendingPod = Pod.fromPartial({
  apiVersion: "flotilla.io/v1",
  kind: "Pod",
  metadata: { name: "big", namespace: "default", uid: "pod-uid-2", creationTimestamp: "2024-05-01T11:59:00Z" },
  spec: { containers: [{ name: "main", image: "busybox", resources: { requests: { cpu: "8" } } }] },
  status: {
    phase: "Pending",
    conditions: [
      { type: "PodScheduled", status: "False", reason: "Unschedulable", message: SCHEDULING_MESSAGE, lastTransitionTime: "2024-05-01T11:59:30Z" },
    ],
  },
});

describe("formatTimestamp", () => {
  it("prints RFC 1123 with a numeric zone, in UTC", () => {
    expect(formatTimestamp("2024-05-01T13:04:05+02:00")).toBe("Wed, 01 May 2024 11:04:05 +0000");
    expect(formatTimestamp("")).toBe("<unknown>");
    expect(formatTimestamp("not a time")).toBe("<unknown>");
  });
});

describe("describePod", () => {
  it("describes a running pod the way kubectl does", () => {
    expect(describePod(runningPod, NOW)).toBe(
      [
        "Name:            web-7f9c-abcde",
        "Namespace:       default",
        "Node:            node-1/10.0.0.5",
        "Start Time:      Wed, 01 May 2024 11:55:02 +0000",
        "Labels:          app=web",
        "                 pod-template-hash=7f9c",
        "Annotations:     <none>",
        "Status:          Running",
        "IP:              10.0.0.5",
        "Controlled By:   Deployment/web",
        "Node-Selectors:  <none>",
        "Ports:           10.0.0.5:31000 -> 80/TCP",
        "Containers:",
        "  web:",
        "    Container ID:  docker://0123456789ab",
        "    Image:         nginx:1.25",
        "    Port:          80/TCP",
        "    Host Port:     0/TCP",
        "    Command:",
        "      nginx",
        "    Args:",
        "      -g",
        "      daemon off;",
        "    State:          Running",
        "      Started:      Wed, 01 May 2024 11:56:00 +0000",
        "    Last State:     Terminated",
        "      Reason:       Error",
        "      Exit Code:    1",
        "      Started:      Wed, 01 May 2024 11:55:30 +0000",
        "      Finished:     Wed, 01 May 2024 11:55:59 +0000",
        "    Ready:          True",
        "    Restart Count:  2",
        "    Limits:",
        "      cpu:     500m",
        "      memory:  128Mi",
        "    Requests:",
        "      cpu:     250m",
        "      memory:  64Mi",
        "    Environment:",
        "      FOO:  bar",
        "Conditions:",
        "  Type          Status  Reason     Message",
        "  ----          ------  ------     -------",
        "  PodScheduled  True    Scheduled  assigned to node-1",
        "  Ready         True",
        "Events:",
        "  Type    Reason     Age    From       Message",
        "  ----    ------     ---    ----       -------",
        "  Normal  Scheduled  4m59s  scheduler  Successfully assigned default/web-7f9c-abcde to node-1",
        "",
      ].join("\n"),
    );
  });

  it("says plainly why a pending pod has no node", () => {
    const text = describePod(pendingPod, NOW);
    expect(text).toBe(
      [
        "Name:            big",
        "Namespace:       default",
        "Node:            <none>",
        "Labels:          <none>",
        "Annotations:     <none>",
        "Status:          Pending",
        "IP:              <none>",
        "Node-Selectors:  <none>",
        "Ports:           <none>",
        "Containers:",
        "  main:",
        "    Image:      busybox",
        "    Port:       <none>",
        "    Host Port:  <none>",
        "    Requests:",
        "      cpu:        8",
        "    Environment:  <none>",
        "Conditions:",
        "  Type          Status  Reason         Message",
        "  ----          ------  ------         -------",
        `  PodScheduled  False   Unschedulable  ${SCHEDULING_MESSAGE}`,
        "Events:",
        "  Type     Reason            Age  From       Message",
        "  ----     ------            ---  ----       -------",
        `  Warning  FailedScheduling  30s  scheduler  ${SCHEDULING_MESSAGE}`,
        "",
      ].join("\n"),
    );
    expect(text.split("\n").some((line) => /^\s*Warning\s+FailedScheduling\s.*0\/2 nodes are available: 2 Insufficient cpu\.$/.test(line))).toBe(true);
  });

  it("shows a waiting container's reason and message, a pod's reason, and several published ports", () => {
    const pod = Pod.fromPartial({
      metadata: { name: "two", namespace: "default", annotations: { note: "hi" } },
      spec: { nodeName: "node-2", nodeSelector: { disk: "ssd" }, containers: [{ name: "a", image: "bad:tag" }, { name: "b", image: "redis", ports: [{ containerPort: 6379 }, { containerPort: 6380, hostPort: 7000, protocol: "UDP" }] }] },
      status: {
        phase: "Pending",
        reason: "Evicted",
        message: "node lost",
        containerStatuses: [{ name: "a", state: { waiting: { reason: "ErrImagePull", message: "pull access denied" } } }],
        ports: [
          { container: "b", containerPort: 6379, hostIp: "10.0.0.6", hostPort: 32000, protocol: "TCP" },
          { container: "b", containerPort: 6380, hostIp: "", hostPort: 7000, protocol: "UDP" },
        ],
      },
    });
    const text = describePod(pod, NOW);
    expect(text).toContain("Node:            node-2\n");
    expect(text).toContain("Annotations:     note: hi\nStatus:          Pending\nReason:          Evicted\nMessage:         node lost\n");
    expect(text).toContain("Node-Selectors:  disk=ssd\n");
    expect(text).toContain("Ports:           10.0.0.6:32000 -> 6379/TCP (b)\n                 0.0.0.0:7000 -> 6380/UDP (b)\n");
    expect(text).toContain("    State:          Waiting\n      Reason:       ErrImagePull\n      Message:      pull access denied\n");
    // Values line up within a run of "Label:<tab>value" lines, so these share the widest label's column.
    expect(text).toContain("    Image:        redis\n    Ports:        6379/TCP, 6380/UDP\n    Host Ports:   0/TCP, 7000/UDP\n");
    expect(text).toContain("    Environment:  <none>\nConditions:       <none>\nEvents:           <none>\n");
  });
});

const node = Node.fromPartial({
  apiVersion: "flotilla.io/v1",
  kind: "Node",
  metadata: {
    name: "node-1",
    uid: "node-uid",
    labels: { "kubernetes.io/os": "linux", "kubernetes.io/hostname": "node-1" },
    creationTimestamp: "2024-04-28T12:00:00Z",
  },
  spec: { unschedulable: true },
  status: {
    capacity: { cpu: "4", memory: "8Gi", pods: "110", "ephemeral-storage": "100Gi" },
    allocatable: { cpu: "2", memory: "4Gi", pods: "110", "ephemeral-storage": "100Gi" },
    usage: { cpu: "350m", memory: "1Gi" },
    conditions: [
      {
        type: "Ready",
        status: "True",
        reason: "AgentReady",
        message: "agent is posting heartbeats",
        lastHeartbeatTime: "2024-05-01T11:59:50Z",
        lastTransitionTime: "2024-04-28T12:00:05Z",
      },
    ],
    addresses: [{ type: "InternalIP", address: "10.0.0.5" }, { type: "Hostname", address: "node-1" }],
    nodeInfo: {
      os: "linux",
      osImage: "Ubuntu 22.04.4 LTS",
      kernelVersion: "6.5.0-1",
      architecture: "x64",
      cpuModel: "AMD EPYC 7B13",
      cpuCores: 4,
      agentVersion: "0.1.0",
      containerRuntime: "docker://24.0.7",
      hostname: "node-1",
    },
  },
});

/** A pod bound to a node, with one container's resources. */
function boundPod(name: string, nodeName: string, phase: string, resources: { requests?: Record<string, string>; limits?: Record<string, string> }): Pod {
  return Pod.fromPartial({
    metadata: { name, namespace: "batch", creationTimestamp: "2024-05-01T10:00:00Z" },
    spec: { nodeName, containers: [{ name: "main", image: "busybox", resources }] },
    status: { phase },
  });
}

describe("describeNode", () => {
  const limitOnly = boundPod("limit-only", "node-1", "Running", { limits: { cpu: "1", memory: "1Gi" } });
  const finished = boundPod("finished", "node-1", "Succeeded", { requests: { cpu: "1" } });
  const elsewhere = boundPod("elsewhere", "node-2", "Running", { requests: { cpu: "1" } });

  it("describes a node with its pods and allocated resources the way kubectl does", () => {
    expect(describeNode(node, [runningPod, limitOnly, finished, elsewhere, pendingPod], NOW)).toBe(
      [
        "Name:               node-1",
        "Labels:             kubernetes.io/hostname=node-1",
        "                    kubernetes.io/os=linux",
        "Annotations:        <none>",
        "CreationTimestamp:  Sun, 28 Apr 2024 12:00:00 +0000",
        "Unschedulable:      true",
        "Conditions:",
        "  Type   Status  LastHeartbeatTime                LastTransitionTime               Reason      Message",
        "  ----   ------  -----------------                ------------------               ------      -------",
        "  Ready  True    Wed, 01 May 2024 11:59:50 +0000  Sun, 28 Apr 2024 12:00:05 +0000  AgentReady  agent is posting heartbeats",
        "Addresses:",
        "  InternalIP:  10.0.0.5",
        "  Hostname:    node-1",
        "Capacity:",
        "  cpu:                4",
        "  ephemeral-storage:  100Gi",
        "  memory:             8Gi",
        "  pods:               110",
        "Allocatable:",
        "  cpu:                2",
        "  ephemeral-storage:  100Gi",
        "  memory:             4Gi",
        "  pods:               110",
        "Usage:",
        "  cpu:     350m",
        "  memory:  1Gi",
        "System Info:",
        "  Operating System:           linux",
        "  OS Image:                   Ubuntu 22.04.4 LTS",
        "  Kernel Version:             6.5.0-1",
        "  Architecture:               x64",
        "  CPU Model:                  AMD EPYC 7B13",
        "  CPU Cores:                  4",
        "  Container Runtime Version:  docker://24.0.7",
        "  Agent Version:              0.1.0",
        "Non-terminated Pods:          (2 in total)",
        "  Namespace                   Name            CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age",
        "  ---------                   ----            ------------  ----------  ---------------  -------------  ---",
        "  batch                       limit-only      1 (50%)       1 (50%)     1Gi (25%)        1Gi (25%)      120m",
        "  default                     web-7f9c-abcde  250m (12%)    500m (25%)  64Mi (1%)        128Mi (3%)     5m",
        "Allocated resources:",
        "  (Total limits may be over 100 percent, i.e., overcommitted.)",
        "  Resource  Requests      Limits",
        "  --------  --------      ------",
        "  cpu       1250m (62%)   1500m (75%)",
        "  memory    1088Mi (26%)  1152Mi (28%)",
        "",
      ].join("\n"),
    );
  });

  it("falls back to capacity without allocatable, and shows 0% against nothing", () => {
    const bare = Node.fromPartial({ metadata: { name: "n" }, status: { capacity: { cpu: "500m" } } });
    const text = describeNode(bare, [boundPod("p", "n", "Running", { requests: { cpu: "100m", memory: "1Mi" } })], NOW);
    expect(text).toContain("  cpu       100m (20%)  0 (0%)\n  memory    1Mi (0%)    0 (0%)\n");
    expect(text).toContain("Unschedulable:      false\nConditions:         <none>\nAddresses:          <none>\nCapacity:\n");
    expect(text).toContain("System Info:          <none>\nNon-terminated Pods:  (1 in total)\n");
  });

  it("sums requests, counting a limit as the request when none is given", () => {
    expect(podResources(boundPod("p", "n", "Running", { requests: { memory: "100Mi" }, limits: { cpu: "2", memory: "200Mi" } }))).toEqual({
      cpuRequestMillis: 2000,
      cpuLimitMillis: 2000,
      memoryRequestBytes: 100 * 2 ** 20,
      memoryLimitBytes: 200 * 2 ** 20,
    });
  });
});

const deployment = Deployment.fromPartial({
  apiVersion: "flotilla.io/v1",
  kind: "Deployment",
  metadata: { name: "web", namespace: "default", uid: "dep-uid", labels: { app: "web" }, creationTimestamp: "2024-05-01T11:00:00Z" },
  spec: {
    replicas: 3,
    selector: { matchLabels: { app: "web" } },
    template: { metadata: { labels: { app: "web" } }, spec: { containers: [WEB_CONTAINER] } },
  },
  status: {
    replicas: 3,
    readyReplicas: 2,
    availableReplicas: 2,
    updatedReplicas: 3,
    conditions: [{ type: "Available", status: "False", reason: "MinimumReplicasUnavailable" }],
  },
});

describe("describeDeployment", () => {
  it("describes a deployment, its template and the pods it owns", () => {
    const stranger = Pod.fromPartial({ metadata: { name: "stranger", ownerReferences: [{ kind: "Deployment", name: "other", uid: "other-uid", controller: true }] } });
    expect(describeDeployment(deployment, [runningPod, stranger, pendingPod], NOW)).toBe(
      [
        "Name:               web",
        "Namespace:          default",
        "CreationTimestamp:  Wed, 01 May 2024 11:00:00 +0000",
        "Labels:             app=web",
        "Annotations:        <none>",
        "Selector:           app=web",
        "Replicas:           3 desired | 3 updated | 3 total | 2 available | 1 unavailable",
        "Pod Template:",
        "  Labels:  app=web",
        "  Containers:",
        "   web:",
        "    Image:      nginx:1.25",
        "    Port:       80/TCP",
        "    Host Port:  0/TCP",
        "    Command:",
        "      nginx",
        "    Args:",
        "      -g",
        "      daemon off;",
        "    Limits:",
        "      cpu:     500m",
        "      memory:  128Mi",
        "    Requests:",
        "      cpu:     250m",
        "      memory:  64Mi",
        "    Environment:",
        "      FOO:  bar",
        "Conditions:",
        "  Type       Status  Reason                      Message",
        "  ----       ------  ------                      -------",
        "  Available  False   MinimumReplicasUnavailable",
        "Pods:",
        "  Name            Ready  Status   Restarts  Node    Age",
        "  ----            -----  ------   --------  ----    ---",
        "  web-7f9c-abcde  1/1    Running  2         node-1  5m",
        "",
      ].join("\n"),
    );
  });

  it("counts pods not yet created as unavailable, and lists no pods when it owns none", () => {
    const fresh = Deployment.fromPartial({ metadata: { name: "fresh", uid: "fresh-uid" }, spec: { replicas: 2 } });
    expect(replicasSummary(fresh)).toBe("2 desired | 0 updated | 0 total | 0 available | 2 unavailable");
    const text = describeDeployment(fresh, [runningPod], NOW);
    expect(text).toContain("Pod Template:\n  Labels:  <none>\n  Containers: <none>\nPods:  <none>\n");
  });

  it("never counts surplus available pods as negative unavailability", () => {
    const scaledDown = Deployment.fromPartial({ spec: { replicas: 1 }, status: { replicas: 3, availableReplicas: 3, updatedReplicas: 1 } });
    expect(replicasSummary(scaledDown)).toBe("1 desired | 1 updated | 3 total | 3 available | 0 unavailable");
  });
});
