// The cluster DNS zone without sockets: which names exist, what they answer, the negative answers' SOA; and the
// resolv.conf a container gets (and the host's one, read for the upstream resolver).
import type { Answer, Question, RecordType } from "dns-packet";
import { describe, expect, it } from "vitest";
import {
  answerQuestion,
  isInDomain,
  NEGATIVE_TTL_SECONDS,
  RECORD_TTL_SECONDS,
  serviceDnsName,
  srvDnsName,
} from "../../src/net/dns-records.js";
import { containerResolvConf, parseResolvConf, upstreamFromResolvConf } from "../../src/net/resolv-conf.js";
import type { ServiceView } from "../../src/net/types.js";

const DOMAIN = "flotilla.local";

const service = (namespace: string, name: string, clusterIp: string, ports: ServiceView["ports"]): ServiceView => ({
  namespace,
  name,
  clusterIp,
  ports,
  sessionAffinity: "None",
});

const port = (name: string, number: number, protocol: "TCP" | "UDP" = "TCP") => ({
  name,
  port: number,
  protocol,
  nodePort: 0,
  backends: [],
});

const SERVICES: ServiceView[] = [
  service("default", "web", "10.96.0.10", [port("http", 80), port("metrics", 9090)]),
  service("default", "dns", "10.96.0.53", [port("dns", 53, "UDP"), port("dns-tcp", 53, "TCP")]),
  service("default", "single", "10.96.0.20", [port("", 8080)]),
  service("default", "headless", "", [port("grpc", 50051)]),
  service("other", "db", "10.96.1.5", [port("pg", 5432)]),
];

const ask = (name: string, type: string = "A", klass: Question["class"] = "IN") =>
  answerQuestion({ name, type: type as RecordType, class: klass }, SERVICES, DOMAIN);

const dataOf = (answers: Answer[] = []) => answers.map((a) => ("data" in a ? a.data : undefined));

describe("cluster zone: service names", () => {
  it("answers A with the clusterIp and a short TTL, owned by the name as asked", () => {
    const a = ask("web.default.svc.flotilla.local");
    expect(a?.rcode).toBe("NOERROR");
    expect(a?.answers).toEqual([
      { name: "web.default.svc.flotilla.local", type: "A", class: "IN", ttl: RECORD_TTL_SECONDS, data: "10.96.0.10" },
    ]);
    expect(a?.authorities).toEqual([]);
  });

  it("compares names case-insensitively and ignores a trailing dot", () => {
    const a = ask("WEB.Default.SVC.Flotilla.LOCAL.");
    expect(dataOf(a?.answers)).toEqual(["10.96.0.10"]);
    expect(a?.answers[0].name).toBe("WEB.Default.SVC.Flotilla.LOCAL.");
    expect(isInDomain("x.FLOTILLA.local", "flotilla.local.")).toBe(true);
  });

  it("answers AAAA (and other types) for an existing service with no records and the SOA", () => {
    for (const type of ["AAAA", "MX", "TXT"]) {
      const a = ask("web.default.svc.flotilla.local", type);
      expect(a?.rcode).toBe("NOERROR");
      expect(a?.answers).toEqual([]);
      expect(a?.authorities.map((r) => r.type)).toEqual(["SOA"]);
    }
  });

  it("answers NXDOMAIN with the SOA (negative TTL) for names in the domain that do not exist", () => {
    for (const name of [
      "nope.default.svc.flotilla.local",
      "web.other.svc.flotilla.local",
      "web.nope.svc.flotilla.local",
      "web.default.default.svc.flotilla.local",
      "web.default.svc.flotilla.local.default.svc.flotilla.local",
      "web.default.pod.flotilla.local",
      "anything.flotilla.local",
    ]) {
      const a = ask(name);
      expect(a?.rcode, name).toBe("NXDOMAIN");
      expect(a?.answers).toEqual([]);
      const soa = a?.authorities[0];
      expect(soa?.type).toBe("SOA");
      expect(soa?.name).toBe("flotilla.local");
      expect(soa?.type === "SOA" && soa.data.minimum).toBe(NEGATIVE_TTL_SECONDS);
      expect(soa?.type === "SOA" && soa.ttl).toBe(NEGATIVE_TTL_SECONDS);
    }
  });

  it("lets the names above a service exist without records (so resolvers do not cache them as absent)", () => {
    const parents = [
      "flotilla.local",
      "svc.flotilla.local",
      "default.svc.flotilla.local",
      "_tcp.web.default.svc.flotilla.local",
    ];
    for (const name of parents) {
      const a = ask(name);
      expect(a?.rcode, name).toBe("NOERROR");
      expect(a?.answers).toEqual([]);
    }
    expect(dataOf(ask("flotilla.local", "SOA")?.answers)).toMatchObject([{ mname: "ns.dns.flotilla.local" }]);
    expect(ask("_udp.web.default.svc.flotilla.local")?.rcode).toBe("NXDOMAIN");
  });

  it("gives a service without a virtual IP no address, but keeps its name", () => {
    const a = ask("headless.default.svc.flotilla.local");
    expect(a?.rcode).toBe("NOERROR");
    expect(a?.answers).toEqual([]);
  });

  it("leaves names outside the cluster domain to the caller (forwarding)", () => {
    expect(ask("example.com")).toBeUndefined();
    expect(ask("flotilla.localhost")).toBeUndefined();
    expect(ask("web.default")).toBeUndefined();
    expect(ask(".")).toBeUndefined();
  });

  it("refuses classes other than IN inside the zone", () => {
    expect(ask("web.default.svc.flotilla.local", "TXT", "CH")?.rcode).toBe("REFUSED");
    expect(dataOf(ask("web.default.svc.flotilla.local", "A", "ANY")?.answers)).toEqual(["10.96.0.10"]);
  });

  it("reads the view it is given, nothing cached", () => {
    const moved = [service("default", "web", "10.96.9.9", [])];
    const web = { name: "web.default.svc.flotilla.local", type: "A" } as const;
    expect(dataOf(answerQuestion(web, moved, DOMAIN)?.answers)).toEqual(["10.96.9.9"]);
    expect(answerQuestion(web, [], DOMAIN)?.rcode).toBe("NXDOMAIN");
    const elsewhere = { name: "web.default.svc.cluster.test", type: "A" } as const;
    expect(answerQuestion(elsewhere, moved, "cluster.test")?.rcode).toBe("NOERROR");
  });
});

describe("cluster zone: SRV", () => {
  it("answers a named port: priority 0, weight 100, its port, the service as target, the A as additional", () => {
    const a = ask("_http._tcp.web.default.svc.flotilla.local", "SRV");
    expect(a?.rcode).toBe("NOERROR");
    expect(a?.answers).toEqual([
      {
        name: "_http._tcp.web.default.svc.flotilla.local",
        type: "SRV",
        class: "IN",
        ttl: RECORD_TTL_SECONDS,
        data: { priority: 0, weight: 100, port: 80, target: "web.default.svc.flotilla.local" },
      },
    ]);
    expect(a?.additionals).toEqual([
      { name: "web.default.svc.flotilla.local", type: "A", class: "IN", ttl: RECORD_TTL_SECONDS, data: "10.96.0.10" },
    ]);
    expect(srvDnsName("http", "TCP", "web", "default", DOMAIN)).toBe("_http._tcp.web.default.svc.flotilla.local");
    expect(serviceDnsName("Web", "Default", "Flotilla.Local.")).toBe("web.default.svc.flotilla.local");
  });

  it("tells protocols apart and matches case-insensitively", () => {
    expect(dataOf(ask("_DNS._UDP.dns.default.svc.flotilla.local", "SRV")?.answers)).toMatchObject([{ port: 53 }]);
    expect(ask("_dns._tcp.dns.default.svc.flotilla.local", "SRV")?.rcode).toBe("NXDOMAIN");
    expect(dataOf(ask("_dns-tcp._tcp.dns.default.svc.flotilla.local", "SRV")?.answers)).toMatchObject([{ port: 53 }]);
  });

  it("has no SRV name for unknown or unnamed ports, or labels without their underscore", () => {
    for (const name of [
      "_nope._tcp.web.default.svc.flotilla.local",
      "http.tcp.web.default.svc.flotilla.local",
      "_._tcp.single.default.svc.flotilla.local",
      "x._http._tcp.web.default.svc.flotilla.local",
    ]) {
      expect(ask(name, "SRV")?.rcode, name).toBe("NXDOMAIN");
    }
  });

  it("answers an A query on an SRV name with no records", () => {
    const a = ask("_http._tcp.web.default.svc.flotilla.local", "A");
    expect(a?.rcode).toBe("NOERROR");
    expect(a?.answers).toEqual([]);
  });

  it("answers SRV on the service name with every port, weights shared", () => {
    const a = ask("web.default.svc.flotilla.local", "SRV");
    expect(dataOf(a?.answers)).toEqual([
      { priority: 0, weight: 50, port: 80, target: "web.default.svc.flotilla.local" },
      { priority: 0, weight: 50, port: 9090, target: "web.default.svc.flotilla.local" },
    ]);
    expect(dataOf(a?.additionals)).toEqual(["10.96.0.10"]);
  });

  it("gives a headless service's SRV no glue address", () => {
    const a = ask("_grpc._tcp.headless.default.svc.flotilla.local", "SRV");
    expect(dataOf(a?.answers)).toMatchObject([{ port: 50051, target: "headless.default.svc.flotilla.local" }]);
    expect(a?.additionals).toEqual([]);
  });
});

describe("resolv.conf", () => {
  it("gives a container the node's DNS, its namespace's search list and ndots:5", () => {
    expect(containerResolvConf({ nameserver: "10.0.0.5", namespace: "shop" })).toBe(
      "nameserver 10.0.0.5\nsearch shop.svc.flotilla.local svc.flotilla.local flotilla.local\noptions ndots:5\n",
    );
    expect(containerResolvConf({ nameserver: "10.0.0.5", namespace: "Shop", domain: "Cluster.Test." })).toContain(
      "search shop.svc.cluster.test svc.cluster.test cluster.test\n",
    );
  });

  it("round-trips through the parser", () => {
    const conf = parseResolvConf(containerResolvConf({ nameserver: "10.0.0.5", namespace: "default" }));
    expect(conf).toEqual({
      nameservers: ["10.0.0.5"],
      search: ["default.svc.flotilla.local", "svc.flotilla.local", "flotilla.local"],
      ndots: 5,
    });
  });

  it("parses a host's file like glibc: comments, last search/domain wins, defaults", () => {
    const text = [
      "# Generated by NetworkManager",
      "domain corp.example",
      "search a.example b.example ; trailing comment",
      "nameserver 127.0.0.53",
      "; nameserver 10.9.9.9",
      "nameserver   192.0.2.53  ",
      "options edns0 ndots:2 timeout:1",
      "bogus line",
    ].join("\n");
    expect(parseResolvConf(text)).toEqual({
      nameservers: ["127.0.0.53", "192.0.2.53"],
      search: ["a.example", "b.example"],
      ndots: 2,
    });
    expect(parseResolvConf("")).toEqual({ nameservers: [], search: [], ndots: 1 });
    expect(parseResolvConf("options ndots:99").ndots).toBe(15);
  });

  it("takes the first usable nameserver as upstream, skipping our own address and non-addresses", () => {
    const text = "nameserver dns.example\nnameserver 10.0.0.5\nnameserver 192.0.2.53\nnameserver ::1\n";
    expect(upstreamFromResolvConf(text)).toEqual({ address: "10.0.0.5", port: 53 });
    expect(upstreamFromResolvConf(text, ["10.0.0.5"])).toEqual({ address: "192.0.2.53", port: 53 });
    expect(upstreamFromResolvConf("nameserver fe80::1%eth0\n")).toEqual({ address: "fe80::1%eth0", port: 53 });
    expect(upstreamFromResolvConf("# nothing\n")).toBeUndefined();
  });
});
