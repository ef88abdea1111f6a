import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient } from "../../src/api/client.js";
import { Deployment } from "../../src/gen/flotilla/v1/deployment.js";
import { Pod, type PodEvent } from "../../src/gen/flotilla/v1/pod.js";
import { startTestMaster, type TestMaster } from "../support/master.js";

function pod(name: string, extra: Partial<Pod> = {}): Pod {
  return Pod.fromPartial({
    metadata: { name, labels: { app: "web" } },
    spec: { containers: [{ name: "main", image: "flotilla/busybox", command: ["httpd", "-f"], ports: [{ containerPort: 80 }] }] },
    ...extra,
  });
}

describe("master API", () => {
  let t: TestMaster;
  beforeAll(async () => {
    t = await startTestMaster();
  });
  afterAll(async () => t.stop());

  const create = (p: Pod) => t.client.call<Pod>((s, md, o, cb) => s.pods.createPod(p, md, o, cb));
  const get = (name: string) => t.client.call<Pod>((s, md, o, cb) => s.pods.getPod({ namespace: "", name }, md, o, cb));

  it("creates a pod with defaults, uid and a resourceVersion, and gets it back", async () => {
    const created = await create(pod("alpha"));
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.namespace).toBe("default");
    expect(Number(created.metadata?.resourceVersion)).toBeGreaterThan(0);
    expect(created.spec?.restartPolicy).toBe("Always");
    expect(created.spec?.containers[0].ports[0].protocol).toBe("TCP");
    const fetched = await get("alpha");
    expect(fetched.metadata?.uid).toBe(created.metadata?.uid);
    expect(fetched.spec).toEqual(created.spec);
  });

  it("refuses a second create of the same name with ALREADY_EXISTS", async () => {
    await expect(create(pod("alpha"))).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
  });

  it("returns NOT_FOUND for a missing pod", async () => {
    await expect(get("nope")).rejects.toMatchObject({ code: status.NOT_FOUND, details: expect.stringContaining('"nope"') });
  });

  it("rejects a stale resourceVersion on apply with ABORTED and keeps the stored object", async () => {
    const current = await get("alpha");
    const apply = (p: Pod) => t.client.call<Pod>((s, md, o, cb) => s.pods.applyPod(p, md, o, cb));
    const updated = await apply({ ...current, metadata: { ...current.metadata!, labels: { app: "web", v: "2" } } });
    expect(updated.metadata?.labels.v).toBe("2");
    await expect(apply({ ...current, metadata: { ...current.metadata!, labels: { app: "web", v: "3" } } })).rejects.toMatchObject({
      code: status.ABORTED,
    });
    expect((await get("alpha")).metadata?.labels.v).toBe("2");
  });

  it("keeps a pod's binding when its manifest is applied again, and refuses spec changes", async () => {
    await t.client.call<Pod>((s, md, o, cb) => s.pods.createPod(pod("bound"), md, o, cb));
    // Bind by hand, as the scheduler would (no nodes exist in this test; the scheduler may write status meanwhile).
    for (let done = false; !done; ) {
      const kv = (await t.master.store.get("/registry/pods/default/bound"))!;
      const current = Pod.decode(kv.value);
      const next = Pod.encode({ ...current, spec: { ...current.spec!, nodeName: "n1" } }).finish();
      done = (await t.master.store.compareAndSwap(kv.key, kv.modRevision, next)).succeeded;
    }
    const reapplied = await t.client.call<Pod>((s, md, o, cb) => s.pods.applyPod(pod("bound"), md, o, cb));
    expect(reapplied.spec?.nodeName).toBe("n1");
    const changed = pod("bound");
    changed.spec!.containers[0].image = "other";
    await expect(t.client.call((s, md, o, cb) => s.pods.applyPod(changed, md, o, cb))).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringContaining("spec: a pod's spec cannot change"),
    });
  });

  it("names the field and the rule in INVALID_ARGUMENT errors", async () => {
    const bad = pod("Bad_Name");
    await expect(create(bad)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("metadata.name") });
    const badPort = pod("badport");
    badPort.spec!.containers[0].ports[0].containerPort = 70000;
    await expect(create(badPort)).rejects.toMatchObject({
      details: expect.stringContaining("spec.containers[0].ports[0].containerPort: 70000 must be between 1 and 65535"),
    });
    const badQuantity = pod("badq");
    badQuantity.spec!.containers[0].resources = { requests: { cpu: "lots" }, limits: {} };
    await expect(create(badQuantity)).rejects.toMatchObject({ details: expect.stringContaining("spec.containers[0].resources.requests.cpu") });
  });

  it("rejects an object that is too large with a clear message", async () => {
    const big = pod("big");
    big.metadata!.annotations = { "example.com/blob": "x".repeat(2_000_000) };
    await expect(create(big)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("too large") });
    const huge = pod("huge");
    huge.metadata!.annotations = { "example.com/blob": "x".repeat(5_000_000) };
    await expect(create(huge)).rejects.toMatchObject({ code: status.RESOURCE_EXHAUSTED });
  });

  it("lists by label selector", async () => {
    const beta = pod("beta");
    beta.metadata!.labels = { app: "db" };
    await create(beta);
    const list = await t.client.call<{ items: Pod[] }>((s, md, o, cb) => s.pods.listPods({ namespace: "", labelSelector: "app=db", fieldSelector: "" }, md, o, cb));
    expect(list.items.map((p) => p.metadata?.name)).toEqual(["beta"]);
    await expect(
      t.client.call((s, md, o, cb) => s.pods.listPods({ namespace: "", labelSelector: "app in (", fieldSelector: "" }, md, o, cb)),
    ).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  });

  it("watches from a resourceVersion and sees changes in order", async () => {
    const start = await get("beta");
    const events: PodEvent[] = [];
    const stream = t.client.stream((s, md) => s.pods.watchPods({ namespace: "", labelSelector: "", fieldSelector: "", resourceVersion: start.metadata!.resourceVersion }, md));
    stream.on("data", (e: PodEvent) => events.push(e));
    stream.on("error", () => {});
    await create(pod("gamma"));
    await t.client.call((s, md, o, cb) => s.pods.deletePod({ namespace: "", name: "gamma", resourceVersion: "" }, md, o, cb));
    const deadline = Date.now() + 5000;
    while (events.at(-1)?.type !== "DELETED" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stream.cancel();
    // The scheduler may write status in between (MODIFIED); the watch must still begin and end with these.
    const seen = events.map((e) => [e.type, e.object?.metadata?.name]);
    expect(seen[0]).toEqual(["ADDED", "gamma"]);
    expect(seen.at(-1)).toEqual(["DELETED", "gamma"]);
    const versions = events.map((e) => Number(e.object?.metadata?.resourceVersion));
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
  });

  it("refuses calls without a token or with a wrong one as UNAUTHENTICATED", async () => {
    for (const token of ["", "admin.wrong"]) {
      const anon = new ApiClient({ servers: [t.master.address], token });
      await expect(anon.call((s, md, o, cb) => s.pods.getPod({ namespace: "", name: "alpha" }, md, o, cb))).rejects.toMatchObject({
        code: status.UNAUTHENTICATED,
      });
      anon.close();
    }
  });

  it("scales a deployment and rejects negative replicas", async () => {
    const d = Deployment.fromPartial({
      metadata: { name: "web" },
      spec: { selector: { matchLabels: { app: "w" } }, template: { metadata: { labels: { app: "w" } }, spec: pod("x").spec } },
    });
    const created = await t.client.call<Deployment>((s, md, o, cb) => s.deployments.createDeployment(d, md, o, cb));
    expect(created.spec?.replicas).toBe(1);
    const scaled = await t.client.call<{ replicas: number }>((s, md, o, cb) => s.cluster.scale({ kind: "deployment", namespace: "", name: "web", replicas: 4 }, md, o, cb));
    expect(scaled.replicas).toBe(4);
    await expect(
      t.client.call((s, md, o, cb) => s.cluster.scale({ kind: "Deployment", namespace: "", name: "web", replicas: -1 }, md, o, cb)),
    ).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("replicas") });
    const got = await t.client.call<Deployment>((s, md, o, cb) => s.deployments.getDeployment({ namespace: "", name: "web" }, md, o, cb));
    expect(got.spec?.replicas).toBe(4);
    expect(got.metadata?.generation).toBe(2n);
  });
});
