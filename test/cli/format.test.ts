import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { Deployment } from "../../src/gen/flotilla/v1/deployment.js";
import { Node } from "../../src/gen/flotilla/v1/node.js";
import { Pod } from "../../src/gen/flotilla/v1/pod.js";
import {
  alignTabs,
  deploymentTable,
  emptyMessage,
  formatAge,
  nodeTable,
  podRows,
  podTable,
  table,
  toJsonOutput,
  toYamlOutput,
} from "../../src/cli/format.js";

const NOW = new Date("2024-05-01T12:00:00Z");

/** The RFC 3339 time `ms` milliseconds before NOW. */
function ago(ms: number): string {
  return new Date(NOW.getTime() - ms).toISOString();
}

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

describe("formatAge", () => {
  it.each([
    [0, "0s"],
    [45 * S, "45s"],
    [119 * S + 900, "119s"],
    [2 * M, "2m"],
    [3 * M + 20 * S, "3m20s"],
    [9 * M + 59 * S, "9m59s"],
    [10 * M, "10m"],
    [10 * M + 30 * S, "10m"],
    [12 * M, "12m"],
    [179 * M + 59 * S, "179m"],
    [3 * H, "3h"],
    [5 * H, "5h"],
    [5 * H + 30 * M, "5h30m"],
    [7 * H + 59 * M, "7h59m"],
    [8 * H + 30 * M, "8h"],
    [47 * H + 59 * M, "47h"],
    [2 * D, "2d"],
    [3 * D, "3d"],
    [3 * D + 4 * H, "3d4h"],
    [7 * D + 23 * H, "7d23h"],
    [8 * D + 5 * H, "8d"],
    [729 * D, "729d"],
    [730 * D, "2y"],
    [740 * D, "2y10d"],
    [8 * 365 * D, "8y"],
    [9 * 365 * D + 100 * D, "9y"],
  ])("%d ms ago is %s", (ms, expected) => {
    expect(formatAge(ago(ms), NOW)).toBe(expected);
  });

  it("forgives up to a second of clock skew, then calls the time invalid", () => {
    expect(formatAge(ago(-1500), NOW)).toBe("0s");
    expect(formatAge(ago(-2 * S), NOW)).toBe("<invalid>");
  });

  it("shows <unknown> for an empty or malformed timestamp", () => {
    expect(formatAge("", NOW)).toBe("<unknown>");
    expect(formatAge("yesterday-ish", NOW)).toBe("<unknown>");
  });
});

describe("table", () => {
  it("upper-cases headers and separates the widest cell of each column from the next by three spaces", () => {
    expect(table(["name", "ready", "age"], [["a", "1/1", "5m"], ["much-longer-name", "10/10", "3d"]])).toBe(
      "NAME               READY   AGE\n" + //
        "a                  1/1     5m\n" +
        "much-longer-name   10/10   3d\n",
    );
  });

  it("leaves no trailing spaces when the last column is empty, and keeps tabs in cells from breaking columns", () => {
    expect(table(["A", "B"], [["x\ty", ""], ["z", "w"]])).toBe("A     B\nx y\nz     w\n");
  });

  it("prints just the headers for no rows", () => {
    expect(table(["NAME", "AGE"], [])).toBe("NAME   AGE\n");
  });
});

describe("alignTabs", () => {
  it("aligns a column only across adjacent lines that have it, as Go's tabwriter does", () => {
    const text = ["Name:\tweb", "Namespace:\tdefault", "Containers:", "  web:", "    Image:\tnginx", "    Ready:\tTrue"].join("\n");
    expect(alignTabs(text, 2)).toBe(
      ["Name:       web", "Namespace:  default", "Containers:", "  web:", "    Image:  nginx", "    Ready:  True"].join("\n"),
    );
  });

  it("sizes nested columns within each outer block", () => {
    expect(alignTabs("a\tbb\tc\naaa\tb\tc\nx\n1\t2", 1)).toBe("a   bb c\naaa b  c\nx\n1 2");
  });
});

const webPod = Pod.fromPartial({
  apiVersion: "flotilla.io/v1",
  kind: "Pod",
  metadata: { name: "web-7f9c-abcde", namespace: "default", creationTimestamp: ago(3 * M + 20 * S), uid: "u1", labels: { app: "web" }, generation: 2n },
  spec: {
    nodeName: "node-1",
    containers: [
      { name: "web", image: "nginx:1.25", ports: [{ containerPort: 80, protocol: "TCP" }] },
      { name: "sidecar", image: "busybox", command: ["sleep", "infinity"] },
    ],
    terminationGracePeriodSeconds: 30n,
  },
  status: {
    phase: "Running",
    hostIp: "10.0.0.5",
    containerStatuses: [
      { name: "web", ready: true, restartCount: 1, state: { running: { startedAt: ago(M) } } },
      { name: "sidecar", ready: false, restartCount: 4, state: { waiting: { reason: "CrashLoopBackOff" } } },
    ],
    ports: [
      { container: "web", containerPort: 80, hostIp: "10.0.0.5", hostPort: 31000, protocol: "TCP" },
      { container: "web", containerPort: 53, hostIp: "10.0.0.5", hostPort: 31001, protocol: "UDP" },
    ],
  },
});

const pendingPod = Pod.fromPartial({
  apiVersion: "flotilla.io/v1",
  kind: "Pod",
  metadata: { name: "big", namespace: "default", creationTimestamp: ago(45 * S) },
  spec: { containers: [{ name: "main", image: "busybox" }] },
  status: { phase: "Pending" },
});

describe("podTable", () => {
  it("counts ready containers against the spec's containers and sums restarts", () => {
    expect(podTable([webPod, pendingPod], NOW, false)).toBe(
      "NAME             READY   STATUS             RESTARTS   AGE\n" +
        "web-7f9c-abcde   1/2     CrashLoopBackOff   5          3m20s\n" +
        "big              0/1     Pending            0          45s\n",
    );
  });

  it("adds IP, NODE and published PORTS in wide output, <none> where there are none", () => {
    expect(podTable([webPod, pendingPod], NOW, true)).toBe(
      "NAME             READY   STATUS             RESTARTS   AGE     IP         NODE     PORTS\n" +
        "web-7f9c-abcde   1/2     CrashLoopBackOff   5          3m20s   10.0.0.5   node-1   10.0.0.5:31000->80/tcp, 10.0.0.5:31001->53/udp\n" +
        "big              0/1     Pending            0          45s     <none>     <none>   <none>\n",
    );
  });

  it("gives rows that callers can reuse, one per pod", () => {
    expect(podRows([webPod], NOW, false)).toEqual([["web-7f9c-abcde", "1/2", "CrashLoopBackOff", "5", "3m20s"]]);
  });
});

function nodeWith(name: string, ready: string | undefined, unschedulable = false): Node {
  return Node.fromPartial({
    apiVersion: "flotilla.io/v1",
    kind: "Node",
    metadata: { name, creationTimestamp: ago(3 * D) },
    spec: { unschedulable },
    status: {
      capacity: { cpu: "4", memory: "8Gi" },
      conditions: ready ? [{ type: "Ready", status: ready }] : [],
      addresses: [{ type: "Hostname", address: name }, { type: "InternalIP", address: `10.0.0.${name.slice(-1)}` }],
      nodeInfo: { osImage: "Ubuntu 22.04.4 LTS", kernelVersion: "6.5.0-1", containerRuntime: "docker://24.0.7", agentVersion: "0.1.0" },
    },
  });
}

describe("nodeTable", () => {
  const nodes = [nodeWith("node-1", "True"), nodeWith("node-2", "Unknown"), nodeWith("node-3", "True", true), nodeWith("node-4", undefined)];

  it("shows Ready only for Ready=True, and SchedulingDisabled for a cordoned node", () => {
    expect(nodeTable(nodes, NOW, false)).toBe(
      "NAME     STATUS                     AGE   VERSION\n" +
        "node-1   Ready                      3d    0.1.0\n" +
        "node-2   NotReady                   3d    0.1.0\n" +
        "node-3   Ready,SchedulingDisabled   3d    0.1.0\n" +
        "node-4   NotReady                   3d    0.1.0\n",
    );
  });

  it("adds the internal IP, system facts and capacity in wide output", () => {
    const bare = Node.fromPartial({ metadata: { name: "bare" }, spec: { unschedulable: true } });
    expect(nodeTable([nodes[0], bare], NOW, true)).toBe(
      "NAME     STATUS                        AGE         VERSION     INTERNAL-IP   OS-IMAGE             KERNEL-VERSION   CONTAINER-RUNTIME   CPU      MEMORY\n" +
        "node-1   Ready                         3d          0.1.0       10.0.0.1      Ubuntu 22.04.4 LTS   6.5.0-1          docker://24.0.7     4        8Gi\n" +
        "bare     NotReady,SchedulingDisabled   <unknown>   <unknown>   <none>        <unknown>            <unknown>        <unknown>           <none>   <none>\n",
    );
  });
});

const webDeployment = Deployment.fromPartial({
  apiVersion: "flotilla.io/v1",
  kind: "Deployment",
  metadata: { name: "web", namespace: "default", uid: "d1", creationTimestamp: ago(12 * M), generation: 1n },
  spec: {
    replicas: 3,
    selector: { matchLabels: { tier: "front", app: "web" } },
    template: {
      metadata: { labels: { app: "web", tier: "front" } },
      spec: { containers: [{ name: "web", image: "nginx:1.25" }, { name: "log", image: "fluent-bit:3" }] },
    },
  },
  status: { replicas: 3, readyReplicas: 2, availableReplicas: 2, updatedReplicas: 3, observedGeneration: 1n },
});

describe("deploymentTable", () => {
  const fresh = Deployment.fromPartial({ metadata: { name: "fresh", creationTimestamp: ago(5 * H) } });

  it("shows ready over desired replicas, defaulting desired to 1", () => {
    expect(deploymentTable([webDeployment, fresh], NOW, false)).toBe(
      "NAME    READY   UP-TO-DATE   AVAILABLE   AGE\n" + //
        "web     2/3     3            2           12m\n" +
        "fresh   0/1     0            0           5h\n",
    );
  });

  it("adds containers, images and a sorted selector in wide output", () => {
    expect(deploymentTable([webDeployment, fresh], NOW, true)).toBe(
      "NAME    READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES                    SELECTOR\n" +
        "web     2/3     3            2           12m   web,log      nginx:1.25,fluent-bit:3   app=web,tier=front\n" +
        "fresh   0/1     0            0           5h    <none>       <none>                    <none>\n",
    );
  });
});

describe("JSON output", () => {
  it("prints a single pod that reads back through Pod.fromJSON as the same object", () => {
    const out = toJsonOutput("Pod", [webPod], true);
    expect(out.endsWith("}\n")).toBe(true);
    expect(out).toContain('\n    "kind": "Pod",\n');
    const parsed: unknown = JSON.parse(out);
    expect(Object.keys(parsed as object)).toEqual(["apiVersion", "kind", "metadata", "spec", "status"]);
    expect(Pod.fromJSON(parsed)).toStrictEqual(webPod);
  });

  it("wraps several objects in a v1 List whose items read back", () => {
    const parsed = JSON.parse(toJsonOutput("Node", [nodeWith("node-1", "True"), nodeWith("node-2", "False")], false)) as {
      apiVersion: string;
      kind: string;
      items: unknown[];
    };
    expect(Object.keys(parsed)).toEqual(["apiVersion", "kind", "items"]);
    expect(parsed.apiVersion).toBe("v1");
    expect(parsed.kind).toBe("List");
    expect(parsed.items.map((item) => Node.fromJSON(item))).toStrictEqual([nodeWith("node-1", "True"), nodeWith("node-2", "False")]);
  });

  it("prints an empty List for no objects", () => {
    expect(JSON.parse(toJsonOutput("Pod", [], false))).toEqual({ apiVersion: "v1", kind: "List", items: [] });
  });

  it("fills in apiVersion and kind so that the output can be applied", () => {
    const bare = Deployment.fromPartial({ metadata: { name: "web" }, spec: { replicas: 2 } });
    expect(JSON.parse(toJsonOutput("Deployment", [bare], true))).toEqual({
      apiVersion: "flotilla.io/v1",
      kind: "Deployment",
      metadata: { name: "web" },
      spec: { replicas: 2 },
    });
  });

  it("refuses single-object output for anything but one object", () => {
    expect(() => toJsonOutput("Pod", [webPod, pendingPod], true)).toThrow(RangeError);
  });
});

describe("YAML output", () => {
  it("prints a deployment that parses back to the same object, fields in apply order", () => {
    const out = toYamlOutput("Deployment", [webDeployment], true);
    expect(out.startsWith("apiVersion: flotilla.io/v1\nkind: Deployment\nmetadata:\n  name: web\n")).toBe(true);
    const parsed: unknown = parse(out);
    expect(Object.keys(parsed as object)).toEqual(["apiVersion", "kind", "metadata", "spec", "status"]);
    expect(Deployment.fromJSON(parsed)).toStrictEqual(webDeployment);
  });

  it("prints a List with kubectl's unindented sequences", () => {
    const out = toYamlOutput("Pod", [webPod, pendingPod], false);
    expect(out.startsWith("apiVersion: v1\nkind: List\nitems:\n- apiVersion: flotilla.io/v1\n  kind: Pod\n")).toBe(true);
    const parsed = parse(out) as { items: unknown[] };
    expect(parsed.items.map((item) => Pod.fromJSON(item))).toStrictEqual([webPod, pendingPod]);
  });
});

describe("emptyMessage", () => {
  it("names the namespace for namespaced kinds, as kubectl does", () => {
    expect(emptyMessage("pods", "default")).toBe("No resources found in default namespace.");
    expect(emptyMessage("deployments", "prod")).toBe("No resources found in prod namespace.");
  });

  it("says nothing more for cluster-scoped kinds or across all namespaces", () => {
    expect(emptyMessage("nodes", "default")).toBe("No resources found");
    expect(emptyMessage("pods", undefined)).toBe("No resources found");
    expect(emptyMessage("pods", "")).toBe("No resources found");
  });
});
