import { describe, expect, it } from "vitest";
import { Deployment } from "../../../src/gen/flotilla/v1/deployment.js";
import { Pod } from "../../../src/gen/flotilla/v1/pod.js";
import { planDeployment, podFromTemplate, TEMPLATE_HASH_LABEL, templateHash } from "../../../src/master/controllers/deployment-plan.js";

const UID = "d-uid";

function deployment(replicas: number, image = "web:1"): Deployment {
  return Deployment.fromPartial({
    metadata: { name: "web", namespace: "default", uid: UID, generation: 3n },
    spec: {
      replicas,
      selector: { matchLabels: { app: "web" } },
      template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "c", image }] } },
    },
  });
}

let counter = 0;
function pod(d: Deployment, opts: { phase?: string; ready?: boolean; node?: string; hash?: string; created?: string } = {}): Pod {
  const p = podFromTemplate(d);
  p.metadata!.name = `web-${++counter}`;
  p.metadata!.uid = `p-${counter}`;
  p.metadata!.creationTimestamp = opts.created ?? `2026-01-01T00:00:${String(counter % 60).padStart(2, "0")}Z`;
  if (opts.hash) p.metadata!.labels[TEMPLATE_HASH_LABEL] = opts.hash;
  p.spec!.nodeName = opts.node ?? "n1";
  p.status = Pod.fromPartial({
    status: { phase: opts.phase ?? "Running", conditions: [{ type: "Ready", status: opts.ready === false ? "False" : "True" }] },
  }).status;
  return p;
}

describe("Deployment controller decisions", () => {
  it("creates the missing replicas", () => {
    const d = deployment(3);
    expect(planDeployment(d, [pod(d)]).create).toBe(2);
  });

  it("deletes the surplus on scale-down, unscheduled and unready pods first", () => {
    const d = deployment(1);
    const good = pod(d);
    const unready = pod(d, { ready: false });
    const unscheduled = pod(d, { node: "", phase: "Pending", ready: false });
    const plan = planDeployment(d, [good, unready, unscheduled]);
    expect(plan.create).toBe(0);
    expect(plan.delete.map((p) => p.metadata!.name)).toEqual([unscheduled.metadata!.name, unready.metadata!.name]);
  });

  it("among equal pods, deletes the youngest first", () => {
    const d = deployment(1);
    const old = pod(d, { created: "2026-01-01T00:00:00Z" });
    const young = pod(d, { created: "2026-01-02T00:00:00Z" });
    expect(planDeployment(d, [old, young]).delete).toEqual([young]);
  });

  it("replaces failed pods: deletes them and creates new ones", () => {
    const d = deployment(2);
    const failed = pod(d, { phase: "Failed", ready: false });
    const plan = planDeployment(d, [pod(d), failed]);
    expect(plan.delete).toEqual([failed]);
    expect(plan.create).toBe(1);
  });

  it("keeps pods of an old template until the new ones are ready, then removes them", () => {
    const v1 = deployment(2, "web:1");
    const v2 = deployment(2, "web:2");
    const oldPods = [pod(v1), pod(v1)];
    let plan = planDeployment(v2, oldPods);
    expect(plan.create).toBe(2);
    expect(plan.delete).toEqual([]);
    const newPods = [pod(v2, { ready: false }), pod(v2)];
    plan = planDeployment(v2, [...oldPods, ...newPods]);
    expect(plan.delete).toEqual([]);
    newPods[0].status!.conditions[0].status = "True";
    plan = planDeployment(v2, [...oldPods, ...newPods]);
    expect(plan.delete).toEqual(oldPods);
  });

  it("reports status from the pods it sees", () => {
    const d = deployment(3);
    const plan = planDeployment(d, [pod(d), pod(d, { ready: false })]);
    expect(plan.status).toMatchObject({ observedGeneration: 3n, replicas: 2, readyReplicas: 1, updatedReplicas: 2 });
  });

  it("derives pods from the template with its hash and an owner reference", () => {
    const d = deployment(1);
    const p = podFromTemplate(d);
    expect(p.metadata!.generateName).toBe(`web-${templateHash(d).slice(0, 8)}-`);
    expect(p.metadata!.labels).toEqual({ app: "web", [TEMPLATE_HASH_LABEL]: templateHash(d) });
    expect(p.metadata!.ownerReferences[0]).toMatchObject({ kind: "Deployment", name: "web", uid: UID, controller: true });
    expect(templateHash(deployment(1, "web:2"))).not.toBe(templateHash(d));
    expect(templateHash(deployment(5))).toBe(templateHash(d));
  });
});
