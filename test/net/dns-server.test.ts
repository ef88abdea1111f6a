// The cluster DNS server over real UDP and TCP sockets on loopback: cluster names through Node's own resolver,
// search-list expansion the way a pod's stub resolver does it, forwarding to a fake upstream, truncation, and
// garbage that must not bring it down. Every wait is bounded by a client-side timeout; nothing asserts on timing.
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { promises as dns } from "node:dns";
import { connect, createServer, type AddressInfo, type Server } from "node:net";
import {
  decode,
  encode,
  streamDecode,
  streamEncode,
  type Answer,
  type DecodedPacket,
  type Packet,
  type RecordType,
} from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DnsServer, type DnsLog, type DnsServerOptions } from "../../src/net/dns-server.js";
import { FrameReader, framed } from "../../src/net/dns-wire.js";
import { containerResolvConf, parseResolvConf, type ResolvConf } from "../../src/net/resolv-conf.js";
import type { ServiceView } from "../../src/net/types.js";
import { silentLogger } from "../../src/common/logger.js";

const SERVER_IP = "127.0.0.1";
/** The fake upstream resolvers (no real internet in tests): one that answers, one that never does. */
const FAKE_UPSTREAM_IP = "127.0.0.2";
const SILENT_UPSTREAM_IP = "127.0.0.3";
const CLIENT_TIMEOUT_MS = 5_000;

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

/** Enough ports that an SRV answer listing them all is far beyond 512 bytes. */
const MANY_PORTS = 40;
const INITIAL: ServiceView[] = [
  service("default", "web", "10.96.0.10", [port("http", 80), port("dns", 53, "UDP")]),
  service("other", "db", "10.96.1.5", [port("pg", 5432)]),
  service(
    "default",
    "big",
    "10.96.0.99",
    Array.from({ length: MANY_PORTS }, (_, i) => port(`port-${i}`, 10_000 + i)),
  ),
];

// ---- small clients ----

function query(name: string, type: RecordType = "A", extra: Partial<Packet> = {}): Packet {
  return { type: "query", id: 4242, flags: 1 << 8, questions: [{ name, type, class: "IN" }], ...extra };
}

const EDNS_4096: Answer = {
  name: ".",
  type: "OPT",
  udpPayloadSize: 4096,
  extendedRcode: 0,
  ednsVersion: 0,
  flags: 0,
  flag_do: false,
  options: [],
};

/** Sends one datagram and waits (bounded) for one reply. */
function udpExchange(port: number, message: Buffer, address = SERVER_IP): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error("no UDP reply"));
    }, CLIENT_TIMEOUT_MS);
    socket.on("message", (m) => {
      clearTimeout(timer);
      socket.close();
      resolve(m);
    });
    socket.send(message, port, address);
  });
}

const udpQuery = async (port: number, packet: Packet): Promise<DecodedPacket & { rcode?: string }> =>
  decode(await udpExchange(port, encode(packet)));

/** A length-prefixed DNS-over-TCP client: one connection, one query, one reply. */
function tcpQuery(port: number, packet: Packet, address = SERVER_IP): Promise<DecodedPacket & { rcode?: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port });
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("no TCP reply"));
    }, CLIENT_TIMEOUT_MS);
    socket.on("error", reject);
    socket.on("connect", () => socket.write(streamEncode(packet)));
    socket.on("data", (chunk) => {
      received = Buffer.concat([received, chunk]);
      const reply = received.length >= 2 ? streamDecode(received) : null;
      if (reply) {
        clearTimeout(timer);
        socket.destroy();
        resolve(reply as DecodedPacket & { rcode?: string });
      }
    });
  });
}

function resolverFor(port: number): dns.Resolver {
  const resolver = new dns.Resolver({ timeout: CLIENT_TIMEOUT_MS, tries: 1 });
  resolver.setServers([`${SERVER_IP}:${port}`]);
  return resolver;
}

const errorCode = (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (e: NodeJS.ErrnoException) => e.code,
  );

/** Collects log lines, to check what the server said about a query. */
function recordingLog(): DnsLog & { lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const at = (level: string) => (_obj: object, msg: string) => void lines.push({ level, msg });
  return { lines, info: at("info"), warn: at("warn"), debug: at("debug") };
}

// ---- fake upstream resolvers ----

interface FakeUpstream {
  port: number;
  seen: { transport: "udp" | "tcp"; name: string; id: number }[];
  close(): Promise<void>;
}

/** A fake upstream on UDP and TCP (same port) that knows example.test A 192.0.2.1 and nothing else. */
async function startFakeUpstream(): Promise<FakeUpstream> {
  const seen: FakeUpstream["seen"] = [];
  const answer = (raw: Buffer, transport: "udp" | "tcp"): Buffer | undefined => {
    let q: DecodedPacket;
    try {
      q = decode(raw);
    } catch {
      return undefined;
    }
    const question = q.questions?.[0];
    if (!question) return undefined;
    seen.push({ transport, name: question.name, id: q.id ?? 0 });
    const known = question.name.toLowerCase() === "example.test" && question.type === "A";
    return encode({
      type: "response",
      id: q.id,
      flags: (1 << 7) | (known ? 0 : 3), // RA, and NXDOMAIN for anything unknown
      questions: [question],
      answers: known ? [{ name: question.name, type: "A", ttl: 60, data: "192.0.2.1" }] : [],
    });
  };
  const udp = createSocket("udp4");
  await new Promise<void>((resolve) => udp.bind(0, FAKE_UPSTREAM_IP, resolve));
  udp.on("message", (m, from) => {
    const reply = answer(m, "udp");
    if (reply) udp.send(reply, from.port, from.address);
  });
  const port = (udp.address() as AddressInfo).port;
  const tcp: Server = createServer((socket) => {
    const frames = new FrameReader();
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      for (const m of frames.push(chunk)) {
        const reply = answer(m, "tcp");
        if (reply) socket.write(framed(reply));
      }
    });
  });
  await new Promise<void>((resolve) => tcp.listen(port, FAKE_UPSTREAM_IP, resolve));
  return {
    port,
    seen,
    close: async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

/** A fake upstream that receives queries and never answers. */
async function startSilentUpstream(): Promise<{ socket: UdpSocket; port: number; received: () => number }> {
  const socket = createSocket("udp4");
  let received = 0;
  socket.on("message", () => received++);
  await new Promise<void>((resolve) => socket.bind(0, SILENT_UPSTREAM_IP, resolve));
  return { socket, port: (socket.address() as AddressInfo).port, received: () => received };
}

async function startServer(o: Partial<DnsServerOptions> = {}): Promise<DnsServer> {
  const server = new DnsServer({ listen: { address: SERVER_IP, port: 0 }, lookup: () => INITIAL, ...o });
  await server.listen();
  return server;
}

// ---- tests ----

describe("cluster DNS server: cluster names", () => {
  let services: ServiceView[] = INITIAL;
  let server: DnsServer;
  let resolver: dns.Resolver;

  beforeAll(async () => {
    // A real pino logger fits the log option.
    server = await startServer({ lookup: () => services, domain: "flotilla.local", log: silentLogger() });
    resolver = resolverFor(server.port);
  });
  afterAll(() => server.close());

  it("listens on an ephemeral port when given 0", () => {
    expect(server.port).toBeGreaterThan(0);
    expect(server.address).toBe(SERVER_IP);
  });

  it("answers A with the clusterIp (node's resolver)", async () => {
    expect(await resolver.resolve4("web.default.svc.flotilla.local", { ttl: true })).toEqual([
      { address: "10.96.0.10", ttl: 5 },
    ]);
    expect(await resolver.resolve4("db.other.svc.flotilla.local")).toEqual(["10.96.1.5"]);
  });

  it("answers SRV for a named port (node's resolver), with the A as additional", async () => {
    expect(await resolver.resolveSrv("_http._tcp.web.default.svc.flotilla.local")).toEqual([
      { name: "web.default.svc.flotilla.local", port: 80, priority: 0, weight: 100 },
    ]);
    expect(await resolver.resolveSrv("_dns._udp.web.default.svc.flotilla.local")).toMatchObject([{ port: 53 }]);
    const raw = await udpQuery(server.port, query("_http._tcp.web.default.svc.flotilla.local", "SRV"));
    expect(raw.additionals).toMatchObject([{ name: "web.default.svc.flotilla.local", type: "A", data: "10.96.0.10" }]);
  });

  it("answers NXDOMAIN (ENOTFOUND) with the SOA for a missing name in the domain", async () => {
    expect(await errorCode(resolver.resolve4("nope.default.svc.flotilla.local"))).toBe("ENOTFOUND");
    const raw = await udpQuery(server.port, query("nope.default.svc.flotilla.local"));
    expect(raw.rcode).toBe("NXDOMAIN");
    expect(raw.flag_aa).toBe(true);
    expect(raw.authorities).toMatchObject([{ type: "SOA", name: "flotilla.local" }]);
  });

  it("answers AAAA for an existing service with NOERROR and no answers", async () => {
    expect(await errorCode(resolver.resolve6("web.default.svc.flotilla.local"))).toBe("ENODATA");
    const raw = await udpQuery(server.port, query("web.default.svc.flotilla.local", "AAAA"));
    expect(raw.rcode).toBe("NOERROR");
    expect(raw.answers).toEqual([]);
    expect(raw.id).toBe(4242);
  });

  it("matches names case-insensitively", async () => {
    expect(await resolver.resolve4("WEB.Default.Svc.FLOTILLA.local")).toEqual(["10.96.0.10"]);
  });

  it("reflects a change of the view on the next query", async () => {
    services = [service("default", "web", "10.96.7.7", [])];
    expect(await resolver.resolve4("web.default.svc.flotilla.local")).toEqual(["10.96.7.7"]);
    services = [];
    expect(await errorCode(resolver.resolve4("web.default.svc.flotilla.local"))).toBe("ENOTFOUND");
    services = INITIAL;
    expect(await resolver.resolve4("web.default.svc.flotilla.local")).toEqual(["10.96.0.10"]);
  });

  it("answers over TCP (length-prefixed)", async () => {
    const reply = await tcpQuery(server.port, query("web.default.svc.flotilla.local"));
    expect(reply.id).toBe(4242);
    expect(reply.answers).toMatchObject([{ type: "A", data: "10.96.0.10" }]);
  });

  it("truncates a UDP answer over 512 bytes, and gives it whole over TCP or with EDNS", async () => {
    const name = "big.default.svc.flotilla.local";
    const udp = await udpQuery(server.port, query(name, "SRV"));
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers).toEqual([]);
    expect(udp.questions).toMatchObject([{ name, type: "SRV" }]);

    const tcp = await tcpQuery(server.port, query(name, "SRV"));
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers).toHaveLength(MANY_PORTS);
    expect(tcp.additionals).toMatchObject([{ type: "A", data: "10.96.0.99" }]);
    expect(encode(tcp).length).toBeGreaterThan(512);

    const edns = await udpQuery(server.port, query(name, "SRV", { additionals: [EDNS_4096] }));
    expect(edns.flag_tc).toBe(false);
    expect(edns.answers).toHaveLength(MANY_PORTS);
    expect(edns.additionals?.map((a) => a.type)).toEqual(["A", "OPT"]);

    // Node's resolver gets it all too: over EDNS or by retrying over TCP after TC.
    expect(await resolver.resolveSrv(name)).toHaveLength(MANY_PORTS);
  });
});

describe("cluster DNS server: short names through the pod's search list", () => {
  let server: DnsServer;
  beforeAll(async () => (server = await startServer()));
  afterAll(() => server.close());

  /** The names a glibc-style stub resolver tries for `name`, in order (resolv.conf search + ndots rules). */
  function candidates(name: string, conf: ResolvConf): string[] {
    if (name.endsWith(".")) return [name.slice(0, -1)];
    const dots = name.split(".").length - 1;
    const expanded = conf.search.map((domain) => `${name}.${domain}`);
    return dots >= conf.ndots ? [name, ...expanded] : [...expanded, name];
  }

  /** Resolves like a pod's libc: each candidate in turn until one has an answer. Returns what it tried. */
  async function stubResolve(name: string, conf: ResolvConf) {
    const tried: { name: string; rcode?: string }[] = [];
    for (const candidate of candidates(name, conf)) {
      const reply = await udpQuery(server.port, query(candidate));
      tried.push({ name: candidate, rcode: reply.rcode });
      const addresses = (reply.answers ?? []).flatMap((a) => (a.type === "A" ? [a.data] : []));
      if (addresses.length > 0) return { addresses, tried };
    }
    return { addresses: [], tried };
  }

  const podConf = (namespace: string) =>
    parseResolvConf(containerResolvConf({ nameserver: SERVER_IP, namespace, domain: "flotilla.local" }));

  it("node's Resolver does not apply search lists: a short name reaches the server as is", async () => {
    // The server has no upstream, so a name outside the zone is REFUSED: proof "web.default" was sent unexpanded.
    expect(await errorCode(resolverFor(server.port).resolve4("web.default"))).toBe("EREFUSED");
  });

  it("resolves the full name, and `web.default` and `web` by search expansion", async () => {
    const conf = podConf("default");
    expect(conf.ndots).toBe(5);

    const full = await stubResolve("web.default.svc.flotilla.local", conf);
    expect(full.addresses).toEqual(["10.96.0.10"]);
    // Four dots are fewer than ndots:5, so the search list comes first and each of its expansions is NXDOMAIN.
    expect(full.tried.map((t) => t.rcode)).toEqual(["NXDOMAIN", "NXDOMAIN", "NXDOMAIN", "NOERROR"]);

    const withNamespace = await stubResolve("web.default", conf);
    expect(withNamespace.addresses).toEqual(["10.96.0.10"]);
    expect(withNamespace.tried).toEqual([
      { name: "web.default.default.svc.flotilla.local", rcode: "NXDOMAIN" },
      { name: "web.default.svc.flotilla.local", rcode: "NOERROR" },
    ]);

    const bare = await stubResolve("web", conf);
    expect(bare.tried).toEqual([{ name: "web.default.svc.flotilla.local", rcode: "NOERROR" }]);
    expect(bare.addresses).toEqual(["10.96.0.10"]);
  });

  it("resolves another namespace's service by `<service>.<namespace>`, not by its bare name", async () => {
    const conf = podConf("default");
    expect((await stubResolve("db.other", conf)).addresses).toEqual(["10.96.1.5"]);
    expect((await stubResolve("db", conf)).addresses).toEqual([]);
    expect((await stubResolve("db", podConf("other"))).addresses).toEqual(["10.96.1.5"]);
  });
});

describe("cluster DNS server: forwarding", () => {
  let upstream: FakeUpstream;
  let server: DnsServer;

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    server = await startServer({ upstream: { address: FAKE_UPSTREAM_IP, port: upstream.port } });
  });
  afterAll(async () => {
    await server.close();
    await upstream.close();
  });

  it("forwards names outside the domain to the (fake) upstream and relays its answer", async () => {
    expect(await resolverFor(server.port).resolve4("example.test")).toEqual(["192.0.2.1"]);
    expect(await errorCode(resolverFor(server.port).resolve4("unknown.test"))).toBe("ENOTFOUND");
  });

  it("relays the answer with the client's query id over UDP", async () => {
    const reply = await udpQuery(server.port, query("example.test", "A", { id: 31337 }));
    expect(reply.id).toBe(31337);
    expect(reply.flag_ra).toBe(true);
    expect(reply.answers).toMatchObject([{ name: "example.test", data: "192.0.2.1" }]);
    expect(upstream.seen.at(-1)).toMatchObject({ transport: "udp", name: "example.test" });
  });

  it("forwards a TCP query over TCP", async () => {
    const reply = await tcpQuery(server.port, query("example.test", "A", { id: 777 }));
    expect(reply.id).toBe(777);
    expect(reply.answers).toMatchObject([{ data: "192.0.2.1" }]);
    expect(upstream.seen.at(-1)).toMatchObject({ transport: "tcp", name: "example.test" });
  });

  it("keeps answering cluster names itself", async () => {
    const before = upstream.seen.length;
    expect(await resolverFor(server.port).resolve4("web.default.svc.flotilla.local")).toEqual(["10.96.0.10"]);
    expect(await errorCode(resolverFor(server.port).resolve4("nope.default.svc.flotilla.local"))).toBe("ENOTFOUND");
    expect(upstream.seen.length).toBe(before);
  });

  it("answers REFUSED when no upstream is configured, and says so at debug", async () => {
    const log = recordingLog();
    const lonely = await startServer({ log });
    try {
      const reply = await udpQuery(lonely.port, query("example.test"));
      expect(reply.rcode).toBe("REFUSED");
      expect(reply.id).toBe(4242);
      expect(reply.flag_ra).toBe(false);
      expect(log.lines).toContainEqual({ level: "debug", msg: "no upstream DNS configured; refusing" });
    } finally {
      await lonely.close();
      await lonely.close(); // idempotent
    }
  });

  it("answers SERVFAIL when the upstream stays silent", async () => {
    const silent = await startSilentUpstream();
    const stuck = await startServer({
      upstream: { address: SILENT_UPSTREAM_IP, port: silent.port },
      upstreamTimeoutMs: 200,
    });
    try {
      const reply = await udpQuery(stuck.port, query("example.test"));
      expect(reply.rcode).toBe("SERVFAIL");
      expect(reply.id).toBe(4242);
      expect(reply.questions).toMatchObject([{ name: "example.test" }]);
      expect(silent.received()).toBe(1);
    } finally {
      await stuck.close();
      silent.socket.close();
    }
  });
});

describe("DNS over TCP framing", () => {
  it("reassembles length-prefixed messages however the stream is split", () => {
    const messages = [encode(query("a.test")), encode(query("web.default.svc.flotilla.local", "SRV")), Buffer.alloc(0)];
    const stream = Buffer.concat(messages.map(framed));
    for (const step of [1, 2, 3, 7, stream.length]) {
      const reader = new FrameReader();
      const out: Buffer[] = [];
      for (let i = 0; i < stream.length; i += step) out.push(...reader.push(stream.subarray(i, i + step)));
      expect(out, `step ${step}`).toEqual(messages);
    }
  });
});

describe("cluster DNS server: malformed input", () => {
  let upstream: FakeUpstream;
  let server: DnsServer;
  const log = recordingLog();

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    server = await startServer({
      upstream: { address: FAKE_UPSTREAM_IP, port: upstream.port },
      upstreamTimeoutMs: 200,
      log,
    });
  });
  afterAll(async () => {
    await server.close();
    await upstream.close();
  });

  /** Deterministic, so a failing input can be reproduced. */
  function prng(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return s / 0x100000000;
    };
  }

  function garbage(random: () => number): Buffer {
    const byte = (): number => Math.floor(random() * 256);
    const name = random() < 0.5 ? "web.default.svc.flotilla.local" : "example.test";
    const valid = encode(query(name, "SRV", { additionals: [EDNS_4096] }));
    const kind = Math.floor(random() * 4);
    if (kind === 0) return Buffer.from(Array.from({ length: Math.floor(random() * 600) }, byte));
    if (kind === 1) return valid.subarray(0, Math.floor(random() * valid.length)); // truncated
    const mutated = Buffer.from(valid);
    for (let i = 0; i < 1 + random() * 6; i++) mutated[Math.floor(random() * mutated.length)] = byte();
    if (kind === 3) mutated.writeUInt16BE(0xffff, 4 + 2 * Math.floor(random() * 4)); // absurd section counts
    return mutated;
  }

  it("answers FORMERR to an undecodable query and ignores responses and runts", async () => {
    const header = Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]); // claims a question, has none
    const reply = decode(await udpExchange(server.port, header)) as DecodedPacket & { rcode?: string };
    expect(reply.id).toBe(0x1234);
    expect(reply.rcode).toBe("FORMERR");

    const loop = Buffer.concat([header.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]); // pointer to itself
    expect((decode(await udpExchange(server.port, loop)) as { rcode?: string }).rcode).toBe("FORMERR");
  });

  it("survives a few hundred random and truncated packets over UDP and TCP, then still answers", async () => {
    const random = prng(20240601);
    const sender = createSocket("udp4");
    for (let i = 0; i < 400; i++) sender.send(garbage(random), server.port, SERVER_IP);

    // Well-framed garbage on one connection, then raw garbage (bogus length prefixes) on a few others.
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host: SERVER_IP, port: server.port }, () => {
        for (let i = 0; i < 200; i++) socket.write(framed(garbage(random)));
        socket.end(resolve);
      });
      socket.on("error", reject);
      socket.on("data", () => {});
    });
    for (let c = 0; c < 10; c++) {
      await new Promise<void>((resolve) => {
        const socket = connect({ host: SERVER_IP, port: server.port }, () => {
          socket.write(garbage(random));
          socket.destroy();
          resolve();
        });
        socket.on("error", () => resolve());
      });
    }
    await new Promise<void>((resolve) => sender.close(() => resolve()));

    expect((await udpQuery(server.port, query("web.default.svc.flotilla.local"))).answers).toMatchObject([
      { data: "10.96.0.10" },
    ]);
    expect((await tcpQuery(server.port, query("web.default.svc.flotilla.local"))).answers).toMatchObject([
      { data: "10.96.0.10" },
    ]);
    expect((await udpQuery(server.port, query("example.test"))).answers).toMatchObject([{ data: "192.0.2.1" }]);
    // Every input was handled as a client's fault, none reached the catch-all for the server's own bugs.
    expect(log.lines.filter((l) => l.level === "warn")).toEqual([]);
  });
});
