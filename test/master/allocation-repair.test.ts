// Leaked service allocations (a VIP or NodePort key whose service never got stored, or is gone) are given back by
// the leader's repair pass; held ones, and claims still on their way to a stored service, are never touched.
import { describe, expect, it } from "vitest";
import { Service } from "../../src/gen/flotilla/v1/service.js";
import { confirmLeaks, leakedAllocations } from "../../src/master/controllers/allocation-repair-plan.js";
import { parseServiceRange, ServiceAllocator, type Allocation } from "../../src/master/service-allocator.js";
import { eventually, startTestMaster } from "../support/master.js";

const alloc = (pool: Allocation["pool"], value: string, owner: string, modRevision = 5): Allocation => ({
  pool, value, owner, key: `/registry/allocations/${pool}/${value}`, modRevision,
});

describe("leakedAllocations and confirmLeaks", () => {
  const services = [
    Service.fromPartial({ metadata: { namespace: "default", name: "web" }, spec: { clusterIp: "10.96.0.5", type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] } }),
    Service.fromPartial({ metadata: { namespace: "default", name: "db" }, spec: { clusterIp: "10.96.0.6", type: "ClusterIP", ports: [{ port: 5432, nodePort: 30432 }] } }),
  ];

  it("finds keys whose owner is gone or no longer holds the value, and no others", () => {
    const all = [
      alloc("ip", "10.96.0.5", "default/web"),
      alloc("nodePort", "30080", "default/web"),
      alloc("ip", "10.96.0.6", "default/db"),
      // db is ClusterIP now: its old NodePort is no longer held.
      alloc("nodePort", "30432", "default/db"),
      // The service was never stored (a crash between claim and write), or the same value under another owner.
      alloc("ip", "10.96.0.7", "default/ghost"),
      alloc("ip", "10.96.0.5", "other/web"),
    ];
    expect(leakedAllocations(all, services).map((a) => `${a.pool} ${a.value} ${a.owner}`)).toEqual([
      "nodePort 30432 default/db",
      "ip 10.96.0.7 default/ghost",
      "ip 10.96.0.5 other/web",
    ]);
  });

  it("releases a leak only on its second sighting, and only if the key did not change in between", () => {
    const first = confirmLeaks([alloc("ip", "10.96.0.7", "default/ghost", 9)], new Map());
    expect(first.release).toEqual([]);
    const second = confirmLeaks([alloc("ip", "10.96.0.7", "default/ghost", 9)], first.suspects);
    expect(second.release.map((a) => a.value)).toEqual(["10.96.0.7"]);
    // Claimed again meanwhile (a new revision): watched afresh, not released.
    const reclaimed = confirmLeaks([alloc("ip", "10.96.0.7", "default/ghost2", 12)], first.suspects);
    expect(reclaimed.release).toEqual([]);
    expect([...reclaimed.suspects.values()]).toEqual([12]);
  });
});

describe("allocation repair on a real master", () => {
  it("gives back a VIP and a NodePort claimed by a service that was never stored, and keeps a stored service's", async () => {
    // A /29 has six addresses: leaking them all exhausts the range until the repair pass runs.
    const t = await startTestMaster({ serviceCidr: "10.98.0.0/29", allocationRepairIntervalSeconds: 0.2 });
    try {
      const web = await t.client.call<Service>((c, md, o, cb) =>
        c.services.createService(Service.fromPartial({ metadata: { name: "web" }, spec: { selector: { app: "web" }, type: "NodePort", ports: [{ port: 80 }] } }), md, o, cb),
      );
      // What a master that crashed right after claiming leaves behind: keys with no service.
      const crashed = new ServiceAllocator(t.master.store, parseServiceRange("10.98.0.0/29"));
      const leakedIps: string[] = [];
      for (let i = 0; i < 5; i++) leakedIps.push(await crashed.allocateIp(`default/lost-${i}`));
      const leakedPort = await crashed.allocateNodePort("default/lost-0", "spec.ports[0].nodePort", 31999);
      expect(new Set([...leakedIps, web.spec!.clusterIp]).size).toBe(6);

      const remaining = await eventually(async () => {
        const left = await crashed.allocations();
        return left.length === 2 ? left : undefined;
      }, 20_000, "the leaked allocations to be released");
      expect(remaining.map((a) => `${a.pool} ${a.value} ${a.owner}`).sort()).toEqual(
        [`ip ${web.spec!.clusterIp} default/web`, `nodePort ${web.spec!.ports[0]!.nodePort} default/web`].sort(),
      );
      // The freed values are usable again: the range has room, and the NodePort can be asked for by number.
      const again = await t.client.call<Service>((c, md, o, cb) =>
        c.services.createService(
          Service.fromPartial({ metadata: { name: "again" }, spec: { selector: { app: "x" }, type: "NodePort", ports: [{ port: 80, nodePort: leakedPort }] } }),
          md, o, cb,
        ),
      );
      expect(leakedIps).toContain(again.spec!.clusterIp);
      expect(again.spec!.ports[0]!.nodePort).toBe(leakedPort);
    } finally {
      await t.stop();
    }
  }, 60_000);
});
