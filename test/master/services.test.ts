// Services through a real master's API: virtual IPs and NodePorts allocated from their ranges, unique, released on
// delete, refused with the field and the rule when taken or exhausted; Endpoints kept by the controller from the
// pods the selector matches, ready and not ready. Also the allocator alone racing against itself on one store.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pod } from "../../src/gen/flotilla/v1/pod.js";
import { Endpoints, Service } from "../../src/gen/flotilla/v1/service.js";
import { MemoryStore } from "../../src/store/index.js";
import { ipToNumber, parseServiceRange, ServiceAllocator } from "../../src/master/service-allocator.js";
import { eventually, startTestMaster, type TestMaster } from "../support/master.js";

function service(name: string, spec: Partial<NonNullable<Service["spec"]>> = {}): Service {
  return Service.fromPartial({ metadata: { name }, spec: { selector: { app: name }, ports: [{ port: 80, targetPort: "http" }], ...spec } });
}

describe("services", () => {
  let t: TestMaster;
  beforeAll(async () => {
    // A /29: six usable addresses, so exhaustion is quick to reach.
    t = await startTestMaster({ serviceCidr: "10.97.0.0/29" });
  });
  afterAll(async () => t.stop());

  const create = (s: Service) => t.client.call<Service>((c, md, o, cb) => c.services.createService(s, md, o, cb));
  const apply = (s: Service) => t.client.call<Service>((c, md, o, cb) => c.services.applyService(s, md, o, cb));
  const remove = (name: string) => t.client.call((c, md, o, cb) => c.services.deleteService({ namespace: "", name, resourceVersion: "" }, md, o, cb));
  const endpoints = (name: string) => t.client.call<Endpoints>((c, md, o, cb) => c.endpoints.getEndpoints({ namespace: "", name }, md, o, cb));

  it("gives a service a virtual IP from the range and a NodePort from 30000-32767, with defaults", async () => {
    const web = await create(service("web", { type: "NodePort" }));
    const ip = ipToNumber(web.spec!.clusterIp);
    expect(ip).toBeGreaterThan(ipToNumber("10.97.0.0"));
    expect(ip).toBeLessThan(ipToNumber("10.97.0.7"));
    expect(web.spec!.ports[0]).toMatchObject({ protocol: "TCP", targetPort: "http" });
    expect(web.spec!.ports[0].nodePort).toBeGreaterThanOrEqual(30000);
    expect(web.spec!.ports[0].nodePort).toBeLessThanOrEqual(32767);
    expect(web.spec!.sessionAffinity).toBe("None");
    // Re-applying the manifest keeps both.
    const again = await apply(service("web", { type: "NodePort" }));
    expect(again.spec!.clusterIp).toBe(web.spec!.clusterIp);
    expect(again.spec!.ports[0].nodePort).toBe(web.spec!.ports[0].nodePort);
  });

  it("refuses a NodePort that another service holds, naming the field and the holder", async () => {
    const web = await t.client.call<Service>((c, md, o, cb) => c.services.getService({ namespace: "", name: "web" }, md, o, cb));
    const taken = web.spec!.ports[0].nodePort;
    const err = await create(service("copy", { type: "NodePort", ports: [{ port: 81, targetPort: "81", nodePort: taken, name: "", protocol: "" }] })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining(`spec.ports[0].nodePort: ${taken} is already allocated to default/web`) });
    // Nothing was left behind: the address the refused service had claimed is free again (six create below fit).
  });

  it("refuses bad ports with the field and the rule, and stores nothing", async () => {
    const err = await create(service("bad", { ports: [{ port: 70000, name: "", targetPort: "", protocol: "", nodePort: 0 }] })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("spec.ports[0].port: 70000 must be between 1 and 65535") });
    const np = await create(service("bad", { ports: [{ port: 80, name: "", targetPort: "", protocol: "", nodePort: 80 }], type: "NodePort" })).catch((e: unknown) => e);
    expect(np).toMatchObject({ details: expect.stringContaining("spec.ports[0].nodePort: 80 must be between 30000 and 32767") });
    await expect(t.client.call((c, md, o, cb) => c.services.getService({ namespace: "", name: "bad" }, md, o, cb))).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it("runs out of addresses with a clear error, and a delete frees one", async () => {
    // web holds one of the six.
    for (let i = 1; i <= 5; i++) await create(service(`fill-${i}`));
    const err = await create(service("one-too-many")).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining("the service range 10.97.0.0/29 is exhausted") });
    const freed = (await t.client.call<Service>((c, md, o, cb) => c.services.getService({ namespace: "", name: "fill-3" }, md, o, cb))).spec!.clusterIp;
    await remove("fill-3");
    const next = await create(service("one-too-many"));
    expect(next.spec!.clusterIp).toBe(freed);
  });

  it("keeps Endpoints from the pods the selector matches: ready ones, not-ready ones, none", async () => {
    const pod = (name: string, ready: boolean, hostPort: number) =>
      Pod.fromPartial({
        metadata: { name, labels: { app: "web" } },
        spec: { nodeName: "node-a", containers: [{ name: "main", image: "img", ports: [{ name: "http", containerPort: 8080 }] }] },
        status: {
          phase: "Running",
          hostIp: "192.0.2.10",
          conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
          ports: [{ container: "main", name: "http", containerPort: 8080, hostIp: "0.0.0.0", hostPort, protocol: "TCP" }],
        },
      });
    for (const [name, ready, port] of [["web-1", true, 31001], ["web-2", true, 31002], ["web-3", false, 31003]] as const) {
      const created = await t.client.call<Pod>((c, md, o, cb) => c.pods.createPod(pod(name, ready, port), md, o, cb));
      await t.client.call<Pod>((c, md, o, cb) => c.pods.updatePodStatus({ ...created, status: pod(name, ready, port).status }, md, o, cb));
    }
    const e = await eventually(async () => {
      const got = await endpoints("web");
      return got.ports[0] && got.ports[0].ready.length === 2 && got.ports[0].notReady.length === 1 ? got : undefined;
    }, 10_000, "the endpoints of web");
    expect(e.ports[0].ready.map((a) => `${a.ip}:${a.port} ${a.pod}`)).toEqual(["192.0.2.10:31001 web-1", "192.0.2.10:31002 web-2"]);
    expect(e.ports[0].notReady.map((a) => a.pod)).toEqual(["web-3"]);
    // Deleting a pod takes it out.
    await t.client.call((c, md, o, cb) => c.pods.deletePod({ namespace: "", name: "web-1", resourceVersion: "" }, md, o, cb));
    await eventually(async () => (await endpoints("web")).ports[0]?.ready.map((a) => a.pod).join() === "web-2", 10_000, "web-1 to leave");
    // A selector that matches nothing is valid: Endpoints with no addresses.
    await eventually(async () => {
      const none = await endpoints("fill-1").catch(() => undefined);
      return none?.ports[0] && none.ports[0].ready.length === 0 && none.ports[0].notReady.length === 0;
    }, 10_000, "empty endpoints");
    // The service gone, its Endpoints go.
    await remove("web");
    const gone = () => endpoints("web").then(() => false, (err: { code?: number }) => err.code === status.NOT_FOUND);
    await eventually(gone, 10_000, "endpoints of a deleted service to go");
  });
});

describe("service allocator", () => {
  it("never gives the same address or NodePort twice, even to concurrent allocators on one store", async () => {
    const store = new MemoryStore();
    const range = parseServiceRange("10.96.0.0/27"); // 30 addresses
    const allocators = [0.1, 0.1, 0.5].map((start) => new ServiceAllocator(store, range, () => start));
    const ips = await Promise.all(Array.from({ length: 30 }, (_, i) => allocators[i % 3]!.allocateIp(`default/s${i}`)));
    expect(new Set(ips).size).toBe(30);
    await expect(allocators[0]!.allocateIp("default/s30")).rejects.toMatchObject({ message: expect.stringContaining("exhausted") });
    const ports = await Promise.all(Array.from({ length: 60 }, (_, i) => allocators[i % 3]!.allocateNodePort(`default/p${i}`, "nodePort")));
    expect(new Set(ports).size).toBe(60);
    // Releasing checks the owner: someone else's value stays allocated.
    await allocators[1]!.releaseIp("default/not-the-owner", ips[0]!);
    await expect(allocators[2]!.allocateIp("default/x", ips[0]!)).rejects.toMatchObject({ message: expect.stringContaining("already allocated to default/s0") });
    await allocators[1]!.releaseIp("default/s0", ips[0]!);
    expect(await allocators[2]!.allocateIp("default/x", ips[0]!)).toBe(ips[0]);
  });

  it("refuses a range it cannot use, naming the flag", () => {
    expect(() => parseServiceRange("10.96.0.0")).toThrow(/--service-cidr: "10.96.0.0" must be an IPv4 CIDR/);
    expect(() => parseServiceRange("10.96.0.0/31")).toThrow(/prefix of \/8 to \/30/);
    expect(parseServiceRange("127.96.0.0/16")).toMatchObject({ first: ipToNumber("127.96.0.1"), last: ipToNumber("127.96.255.254") });
  });
});
