// Real sockets on loopback only: VIPs are 127.0.96.x (bound with LoopbackVips), backends listen on 127.0.0.1 on
// ephemeral ports, clients pick their source address among 127.0.0.x when a test needs distinct client IPs.
import { spawn, type ChildProcess } from "node:child_process";
import * as dgram from "node:dgram";
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Backend, ServicePortView, ServiceView } from "../../src/net/types.js";
import { UserspaceProxy, type UserspaceProxyOptions } from "../../src/net/userspace-proxy.js";
import type { VipAddresses } from "../../src/net/vip-addresses.js";
import { silentLogger } from "../../src/common/logger.js";
import { freePort } from "../support/ports.js";

const cleanups: (() => Promise<void> | void)[] = [];
/** What the proxy logged in the current test. */
const records: { level: string; msg: string }[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  records.length = 0;
});

// ---- backends ----

interface TcpBackend {
  name: string;
  backend: Backend;
}

/** A TCP backend that answers every chunk with "name|chunk" and ends when the client ends. */
async function tcpBackend(name: string): Promise<TcpBackend> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.on("data", (chunk) => socket.write(`${name}|${chunk}`));
    socket.on("end", () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const port = (server.address() as net.AddressInfo).port;
  return { name, backend: { address: "127.0.0.1", port, pod: `default/${name}`, node: "n1" } };
}

async function tcpBackends(...names: string[]): Promise<TcpBackend[]> {
  return Promise.all(names.map(tcpBackend));
}

/** A backend address where nothing listens: connections are refused. */
async function deadBackend(name: string): Promise<Backend> {
  return { address: "127.0.0.1", port: await freePort("127.0.0.1"), pod: `default/${name}`, node: "n1" };
}

/** A free port in the NodePort range (30000-32767, below Linux's ephemeral range), found by trying a few. */
async function freeNodePort(address: string): Promise<number> {
  const start = 30000 + ((process.pid * 7919) % 2000);
  for (let port = start; port < start + 200; port++) {
    const server = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, address, () => resolve(true));
    });
    if (ok) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return port;
    }
  }
  throw new Error("no free port in 30000-32767");
}

// ---- clients ----

/** One request: connect, send "hi", half-close, read until the proxy closes; resolves with the reply. */
function request(host: string, port: number, localAddress?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, localAddress });
    let reply = "";
    socket.on("connect", () => socket.end("hi"));
    socket.on("data", (d) => (reply += String(d)));
    socket.on("error", reject);
    socket.on("close", () => resolve(reply));
  });
}

const backendOf = (reply: string): string => reply.split("|")[0]!;

async function requests(n: number, host: string, port: number, localAddress?: string): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const reply = await request(host, port, localAddress);
    expect(reply).toMatch(/\|hi$/);
    names.push(backendOf(reply));
  }
  return names;
}

function tally(names: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of names) counts[n] = (counts[n] ?? 0) + 1;
  return counts;
}

/** How a connection that should be refused ended: any data it got and the error code, if any. */
function attempt(host: string, port: number): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let data = "";
    let error: string | undefined;
    socket.on("connect", () => socket.write("hi"));
    socket.on("data", (d) => (data += String(d)));
    socket.on("error", (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    socket.on("close", () => resolve({ data, error }));
  });
}

/** A connection kept open, exchanging one message at a time. */
interface LongConnection {
  exchange(message: string): Promise<string>;
  closed: Promise<void>;
  socket: net.Socket;
}

async function longConnection(host: string, port: number): Promise<LongConnection> {
  const socket = net.connect({ host, port });
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  cleanups.push(() => void socket.destroy());
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return {
    socket,
    closed,
    exchange: (message) =>
      new Promise((resolve, reject) => {
        socket.once("data", (d) => resolve(String(d)));
        socket.once("close", () => reject(new Error("closed")));
        socket.write(message);
      }),
  };
}

// ---- the proxy ----

function service(name: string, vip: string, ports: Partial<ServicePortView>[], sessionAffinity: "None" | "ClientIP" = "None"): ServiceView {
  return {
    namespace: "default",
    name,
    clusterIp: vip,
    sessionAffinity,
    ports: ports.map((p) => ({ name: "", port: 80, protocol: "TCP", nodePort: 0, backends: [], ...p })),
  };
}

const recordingLog = {
  info: (_obj: object, msg: string) => void records.push({ level: "info", msg }),
  warn: (_obj: object, msg: string) => void records.push({ level: "warn", msg }),
};

function proxy(options: Partial<UserspaceProxyOptions> = {}): UserspaceProxy {
  const p = new UserspaceProxy({ nodeAddresses: [], log: recordingLog, ...options });
  cleanups.push(() => p.close());
  return p;
}

/** A VIP on loopback and a free port on it. */
async function vipPort(n: number): Promise<[string, number]> {
  const vip = `127.0.96.${n}`;
  return [vip, await freePort(vip)];
}

describe("UserspaceProxy over TCP", () => {
  it("spreads 30 connections over 3 backends exactly evenly (round-robin)", async () => {
    const backends = await tcpBackends("b0", "b1", "b2");
    const [vip, port] = await vipPort(1);
    const p = proxy();
    await p.sync([service("web", vip, [{ port, backends: backends.map((b) => b.backend) }])]);
    expect(tally(await requests(30, vip, port))).toEqual({ b0: 10, b1: 10, b2: 10 });
  });

  it("least-connections sends new connections to idle backends while one holds long connections", async () => {
    const backends = await tcpBackends("b0", "b1", "b2");
    const [vip, port] = await vipPort(2);
    const p = proxy({ balance: "least-connections" });
    await p.sync([service("web", vip, [{ port, backends: [backends[0]!.backend] }])]);
    const held = [await longConnection(vip, port), await longConnection(vip, port), await longConnection(vip, port)];
    for (const c of held) expect(backendOf(await c.exchange("x"))).toBe("b0");

    await p.sync([service("web", vip, [{ port, backends: backends.map((b) => b.backend) }])]);
    const names = await requests(10, vip, port);
    expect(new Set(names)).toEqual(new Set(["b1", "b2"]));
    for (const c of held) expect(backendOf(await c.exchange("y"))).toBe("b0");
  });

  it("ClientIP affinity keeps each client address on one backend", async () => {
    const backends = await tcpBackends("b0", "b1", "b2");
    const [vip, port] = await vipPort(3);
    const p = proxy();
    const web = (list: TcpBackend[]): ServiceView => service("web", vip, [{ port, backends: list.map((b) => b.backend) }], "ClientIP");
    await p.sync([web(backends)]);
    const clients = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    const seen = new Map<string, string[]>(clients.map((c) => [c, []]));
    for (let round = 0; round < 4; round++) {
      for (const client of clients) seen.get(client)!.push(backendOf(await request(vip, port, client)));
    }
    const chosen = clients.map((c) => {
      const names = new Set(seen.get(c));
      expect(names.size).toBe(1);
      return [...names][0]!;
    });
    expect(new Set(chosen).size).toBe(3); // new clients are still spread

    // The first client's backend leaves: it moves, and stays on its new backend.
    await p.sync([web(backends.filter((b) => b.name !== chosen[0]))]);
    const moved = await requests(4, vip, port, clients[0]);
    expect(new Set(moved).size).toBe(1);
    expect(moved[0]).not.toBe(chosen[0]);
  });

  it("skips a backend that refuses connections", async () => {
    const [b0, b1] = await tcpBackends("b0", "b1");
    const [vip, port] = await vipPort(4);
    const p = proxy();
    await p.sync([service("web", vip, [{ port, backends: [b0!.backend, await deadBackend("dead"), b1!.backend] }])]);
    expect(tally(await requests(12, vip, port))).toEqual({ b0: 6, b1: 6 });
    expect(records.some((r) => r.level === "warn" && /did not accept/.test(r.msg))).toBe(true);
  });

  it("skips a backend that does not answer within the connect timeout", async () => {
    const [b0] = await tcpBackends("b0");
    const tarpit = await tarpitBackend();
    const [vip, port] = await vipPort(5);
    const p = proxy({ connectTimeoutMs: 200 });
    await p.sync([service("web", vip, [{ port, backends: [tarpit.backend, b0!.backend] }])]);
    expect(await requests(3, vip, port)).toEqual(["b0", "b0", "b0"]);
  });

  it("waits past the connect timeout for the last backend left, so a backend dropping SYNs for a while (a full accept queue) delays a client instead of failing it", async () => {
    const tarpit = await tarpitBackend();
    const [vip, port] = await vipPort(15);
    const p = proxy({ connectTimeoutMs: 200 });
    await p.sync([service("web", vip, [{ port, backends: [tarpit.backend] }])]);
    const answer = request(vip, port);
    // Past the connect timeout and the kernel's first SYN retransmission (1 s), the backend starts accepting; the
    // retransmission after that (3 s) gets through.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    tarpit.release();
    expect(await answer).toBe("tarpit|hi");
  });

  it("closes the client's connection when every backend refuses, without hanging", async () => {
    const [vip, port] = await vipPort(6);
    const p = proxy();
    await p.sync([service("web", vip, [{ port, backends: [await deadBackend("d0"), await deadBackend("d1")] }])]);
    for (let i = 0; i < 3; i++) expect((await attempt(vip, port)).data).toBe("");
  });

  it("closes the client's connection at once when the port has no backends", async () => {
    const [vip, port] = await vipPort(7);
    const p = proxy();
    await p.sync([service("web", vip, [{ port, backends: [] }])]);
    const outcome = await attempt(vip, port);
    expect(outcome.data).toBe("");
    expect(outcome.error === undefined || outcome.error === "ECONNRESET" || outcome.error === "EPIPE").toBe(true);
  });

  it("drains a removed backend: no new connection reaches it, an open one keeps working", async () => {
    const backends = await tcpBackends("b0", "b1", "b2");
    const [vip, port] = await vipPort(8);
    const p = proxy();
    const web = (list: TcpBackend[]): ServiceView => service("web", vip, [{ port, backends: list.map((b) => b.backend) }]);
    await p.sync([web(backends)]);
    const open = await longConnection(vip, port);
    expect(await open.exchange("before")).toBe("b0|before");

    const listening = records.filter((r) => r.msg === "proxy listening").length;
    await p.sync([web(backends.slice(1))]);
    expect(records.filter((r) => r.msg === "proxy listening").length).toBe(listening); // the listener was kept
    expect(records.some((r) => r.msg === "proxy stopped listening")).toBe(false);

    expect(tally(await requests(10, vip, port))).toEqual({ b1: 5, b2: 5 });
    expect(await open.exchange("after")).toBe("b0|after");
    open.socket.end();
    await open.closed;
  });

  it("sends traffic to backends added by a sync", async () => {
    const backends = await tcpBackends("b0", "b1", "b2", "b3", "b4", "b5");
    const [vip, port] = await vipPort(9);
    const p = proxy();
    const web = (list: TcpBackend[]): ServiceView => service("web", vip, [{ port, backends: list.map((b) => b.backend) }]);
    await p.sync([web(backends.slice(0, 3))]);
    expect(Object.keys(tally(await requests(3, vip, port))).sort()).toEqual(["b0", "b1", "b2"]);
    await p.sync([web(backends)]);
    expect(tally(await requests(30, vip, port))).toEqual({ b0: 5, b1: 5, b2: 5, b3: 5, b4: 5, b5: 5 });
  });

  it("answers a NodePort on the node's addresses", async () => {
    const backends = await tcpBackends("b0", "b1", "b2");
    const [vip, port] = await vipPort(10);
    const nodePort = await freeNodePort("127.0.0.1");
    const p = proxy({ nodeAddresses: ["127.0.0.1"] });
    await p.sync([service("web", vip, [{ port, nodePort, backends: backends.map((b) => b.backend) }])]);
    expect(tally(await requests(30, "127.0.0.1", nodePort))).toEqual({ b0: 10, b1: 10, b2: 10 });
    // The VIP and the NodePort share one balancer.
    expect(await requests(3, vip, port)).toEqual(["b0", "b1", "b2"]);
  });

  it("stops answering a removed service's port", async () => {
    const backends = await tcpBackends("b0");
    const [vip, port] = await vipPort(11);
    const p = proxy();
    await p.sync([service("web", vip, [{ port, backends: [backends[0]!.backend] }])]);
    expect(await requests(1, vip, port)).toEqual(["b0"]);
    await p.sync([]);
    await expect(request(vip, port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("keeps an open connection of a removed service until it ends", async () => {
    const backends = await tcpBackends("b0");
    const [vip, port] = await vipPort(12);
    const p = proxy();
    await p.sync([service("web", vip, [{ port, backends: [backends[0]!.backend] }])]);
    const open = await longConnection(vip, port);
    expect(await open.exchange("1")).toBe("b0|1");
    await p.sync([]);
    expect(await open.exchange("2")).toBe("b0|2");
  });

  it("binds what it can, reports what it cannot, and retries it on the next sync", async () => {
    const backends = await tcpBackends("b0");
    const [vip, port] = await vipPort(13);
    const [vip2, port2] = await vipPort(14);
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(port2, vip2, resolve));
    const p = proxy();
    const both = [
      service("web", vip, [{ port, backends: [backends[0]!.backend] }]),
      service("api", vip2, [{ port: port2, backends: [backends[0]!.backend] }]),
    ];
    await expect(p.sync(both)).rejects.toThrow(/cannot listen on TCP\/127\.0\.96\.14.*EADDRINUSE/);
    expect(await requests(1, vip, port)).toEqual(["b0"]);
    await new Promise<void>((resolve) => squatter.close(() => resolve()));
    await p.sync(both);
    expect(await requests(1, vip2, port2)).toEqual(["b0"]);
  });

  it("accepts a pino logger", () => {
    expect(new UserspaceProxy({ nodeAddresses: [], log: silentLogger() }).mode).toBe("userspace");
  });
});

interface Tarpit {
  backend: Backend;
  /** Unblocks the child: it accepts what is queued and answers like tcpBackend, as "tarpit". */
  release(): void;
}

/**
 * A backend that completes no connection until released: a child process listening with a backlog of 1 whose event
 * loop is blocked (a synchronous read of its stdin), so it never accepts; once two connections fill its queue, the
 * kernel drops further SYNs. Fails if this kernel still completes connections (then no tarpit can be made).
 */
async function tarpitBackend(): Promise<Tarpit> {
  const code =
    "const s=require('net').createServer({allowHalfOpen:true},(c)=>{c.on('error',()=>{});" +
    "c.on('data',(d)=>c.write('tarpit|'+d));c.on('end',()=>c.end())});" +
    "s.listen({host:'127.0.0.1',port:0,backlog:1},()=>{" +
    "process.stdout.write(s.address().port+'\\n');setTimeout(()=>{try{require('fs').readSync(0,Buffer.alloc(1))}catch{}},50)})";
  const child: ChildProcess = spawn(process.execPath, ["-e", code], { stdio: ["pipe", "pipe", "inherit"] });
  cleanups.push(() => void child.kill("SIGKILL"));
  const port = await new Promise<number>((resolve) => child.stdout!.once("data", (d) => resolve(Number(String(d).trim()))));
  await new Promise((resolve) => setTimeout(resolve, 200)); // let it block
  const probe = (): Promise<boolean> =>
    new Promise((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port });
      cleanups.push(() => void socket.destroy());
      socket.on("error", () => resolve(false));
      socket.on("connect", () => resolve(true));
      setTimeout(() => resolve(false), 500).unref();
    });
  for (let i = 0; i < 4; i++) {
    if (!(await probe())) return { backend: { address: "127.0.0.1", port, pod: "default/tarpit", node: "n1" }, release: () => child.stdin!.write("x") };
  }
  throw new Error("this kernel completes connections to a full accept queue: no tarpit can be made");
}

// ---- UDP ----

/** A UDP backend that answers every datagram with "name|datagram". */
async function udpBackend(name: string): Promise<Backend> {
  const socket = dgram.createSocket("udp4");
  socket.on("message", (msg, rinfo) => socket.send(`${name}|${msg}`, rinfo.port, rinfo.address));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return { address: "127.0.0.1", port: socket.address().port, pod: `default/${name}`, node: "n1" };
}

async function freeUdpPort(address: string): Promise<number> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** A UDP client connected to the VIP (so it only accepts replies from the VIP's address and port). */
async function udpClient(vip: string, port: number): Promise<(message: string) => Promise<string>> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.connect(port, vip, resolve));
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return (message) =>
    new Promise((resolve) => {
      socket.once("message", (reply) => resolve(String(reply)));
      socket.send(message);
    });
}

describe("UserspaceProxy over UDP", () => {
  it("relays datagrams to UDP backends and their replies back from the VIP", async () => {
    const [u0, u1] = [await udpBackend("u0"), await udpBackend("u1")];
    const vip = "127.0.96.20";
    const port = await freeUdpPort(vip);
    const p = proxy();
    const dns = (backends: Backend[]): ServiceView => service("dns", vip, [{ port, protocol: "UDP", backends }]);
    await p.sync([dns([u0, u1])]);

    const clients = [await udpClient(vip, port), await udpClient(vip, port), await udpClient(vip, port), await udpClient(vip, port)];
    const first: string[] = [];
    for (const ask of clients) {
      const reply = await ask("q1");
      expect(reply).toMatch(/^u[01]\|q1$/);
      first.push(backendOf(reply));
      expect(backendOf(await ask("q2"))).toBe(backendOf(reply)); // one session per client address
    }
    expect(tally(first)).toEqual({ u0: 2, u1: 2 });

    // u0 leaves: its sessions end at the sync, and their clients' next datagrams go to u1.
    await p.sync([dns([u1])]);
    for (const ask of clients) expect(await ask("q3")).toBe("u1|q3");
  });
});

// ---- lifecycle ----

class RecordingVips implements VipAddresses {
  readonly calls: string[] = [];
  async ensure(addresses: readonly string[]): Promise<void> {
    this.calls.push(`ensure ${addresses.join(",")}`);
  }
  async close(): Promise<void> {
    this.calls.push("close");
  }
}

describe("UserspaceProxy lifecycle", () => {
  it("ensures the VIPs before binding, and on close ends open connections and releases the VIPs", async () => {
    const backends = await tcpBackends("b0");
    const [vip, port] = await vipPort(30);
    const vips = new RecordingVips();
    const p = new UserspaceProxy({ nodeAddresses: [], vips });
    cleanups.push(() => p.close());
    await p.sync([service("web", vip, [{ port, backends: [backends[0]!.backend] }])]);
    expect(vips.calls).toEqual([`ensure ${vip}`]);
    const open = await longConnection(vip, port);
    expect(await open.exchange("x")).toBe("b0|x");

    await p.close();
    await open.closed;
    expect(vips.calls).toEqual([`ensure ${vip}`, "close"]);
    await expect(request(vip, port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await expect(p.sync([])).rejects.toThrow(/closed/);
  });

  it("drops VIPs no longer used from what it asks to hold", async () => {
    const backends = await tcpBackends("b0");
    const [vip1, port1] = await vipPort(31);
    const [vip2, port2] = await vipPort(32);
    const vips = new RecordingVips();
    const p = new UserspaceProxy({ nodeAddresses: [], vips });
    cleanups.push(() => p.close());
    const a = service("a", vip1, [{ port: port1, backends: [backends[0]!.backend] }]);
    const b = service("b", vip2, [{ port: port2, backends: [backends[0]!.backend] }]);
    await p.sync([a, b]);
    await p.sync([b]);
    expect(vips.calls).toEqual([`ensure ${vip1},${vip2}`, `ensure ${vip2}`]);
  });

  it("closes a UDP listener when its service goes", async () => {
    const u0 = await udpBackend("u0");
    const vip = "127.0.96.33";
    const port = await freeUdpPort(vip);
    const p = proxy();
    await p.sync([service("dns", vip, [{ port, protocol: "UDP", backends: [u0] }])]);
    expect(await (await udpClient(vip, port))("q")).toBe("u0|q");
    await p.sync([]);
    // The port is free again: something else can bind it.
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, vip, resolve);
    });
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  });
});
