// The node's cluster DNS server: answers the cluster zone (dns-records.ts) from the current view of services, and
// forwards every other name to the node's upstream resolver. Pods reach it through the nameserver line of their
// resolv.conf (resolv-conf.ts), so in production it listens on port 53 of the node's address, UDP and TCP.
//
// Invariants:
// - Nothing a client sends can crash it: undecodable queries get FORMERR (or nothing, when not even the header is
//   there), replies and responses sent to it are dropped, and every socket error is contained.
// - Each query reads the view anew through lookup(), so a change is visible to the very next query.
// - A UDP reply larger than the client can take (512 bytes, or its EDNS size) is sent truncated (TC) and empty, so
//   the client retries over TCP, where the full reply goes (up to the 64 KiB a TCP message can hold).
// - Forwarding is bounded: in time (upstreamTimeoutMs, then SERVFAIL) and in number of exchanges in flight.
//   Without an upstream, names outside the zone are REFUSED.
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { setMaxListeners } from "node:events";
import { createServer, isIPv6, type AddressInfo, type Server, type Socket as TcpSocket } from "node:net";
import { decode, type DecodedPacket } from "dns-packet";
import { answerQuestion, DEFAULT_CLUSTER_DOMAIN } from "./dns-records.js";
import { forwardQuery } from "./dns-forward.js";
import {
  buildReply,
  encodeWithin,
  FrameReader,
  framed,
  HEADER_BYTES,
  headerOnlyReply,
  isResponse,
  MAX_TCP_MESSAGE,
  opcodeOf,
  type Rcode,
  type ReplyFlags,
  udpLimit,
} from "./dns-wire.js";
import type { DnsAddress } from "./resolv-conf.js";
import type { ServiceView } from "./types.js";

/** The subset of a pino logger the server uses. */
export interface DnsLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface DnsServerOptions {
  /** Where to listen, UDP and TCP. Port 0 picks a free port (for tests); see `port` once listening. */
  listen: DnsAddress;
  /** The current services; called on every query that falls in the cluster zone. */
  lookup: () => readonly ServiceView[];
  /** The cluster domain (default flotilla.local). */
  domain?: string;
  /** Where names outside the cluster domain go (see upstreamFromResolvConf); without it they are REFUSED. */
  upstream?: DnsAddress;
  /** How long to wait for the upstream before answering SERVFAIL (default 2 s). */
  upstreamTimeoutMs?: number;
  /** A TCP connection idle this long is closed (default 10 s), so abandoned ones cannot pile up. */
  tcpIdleTimeoutMs?: number;
  log?: DnsLog;
}

const DEFAULT_UPSTREAM_TIMEOUT_MS = 2_000;
const DEFAULT_TCP_IDLE_TIMEOUT_MS = 10_000;
/** Each exchange holds a socket: a flood of queries for outside names must not exhaust file descriptors. */
const MAX_FORWARDS_IN_FLIGHT = 512;
const MAX_TCP_CONNECTIONS = 256;
/** A TCP client pipelining faster than we answer stops being read until it catches up. */
const MAX_QUERIES_IN_FLIGHT_PER_CONNECTION = 32;
/** Port 0 binds UDP first, then TCP on the same port, which another process may hold: try again with a new one. */
const EPHEMERAL_BIND_ATTEMPTS = 8;

const silent: DnsLog = { info: () => {}, warn: () => {}, debug: () => {} };

type Transport = "udp" | "tcp";

export class DnsServer {
  private readonly domain: string;
  private readonly log: DnsLog;
  private readonly upstreamTimeoutMs: number;
  private readonly tcpIdleTimeoutMs: number;
  private readonly closing = new AbortController();
  private readonly connections = new Set<TcpSocket>();
  private udp?: UdpSocket;
  private tcp?: Server;
  private boundPort = 0;
  private forwardsInFlight = 0;
  private closed?: Promise<void>;

  constructor(private readonly o: DnsServerOptions) {
    this.domain = o.domain ?? DEFAULT_CLUSTER_DOMAIN;
    this.log = o.log ?? silent;
    this.upstreamTimeoutMs = o.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
    this.tcpIdleTimeoutMs = o.tcpIdleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS;
    // Every forward in flight listens for the close; that many listeners are expected, not a leak.
    setMaxListeners(MAX_FORWARDS_IN_FLIGHT + 1, this.closing.signal);
  }

  /** The port both sockets are bound to (0 before listen()). */
  get port(): number {
    return this.boundPort;
  }

  get address(): string {
    return this.o.listen.address;
  }

  async listen(): Promise<void> {
    const { address, port } = this.o.listen;
    for (let attempt = 1; ; attempt++) {
      const udp = await this.bindUdp(address, port);
      const udpPort = (udp.address() as AddressInfo).port;
      try {
        this.tcp = await this.bindTcp(address, udpPort);
      } catch (e) {
        udp.close();
        const retry = port === 0 && (e as NodeJS.ErrnoException).code === "EADDRINUSE";
        if (retry && attempt < EPHEMERAL_BIND_ATTEMPTS) continue;
        throw e;
      }
      this.udp = udp;
      this.boundPort = udpPort;
      break;
    }
    this.log.info(
      { address, port: this.boundPort, domain: this.domain, upstream: this.o.upstream ?? null },
      "cluster DNS listening",
    );
  }

  /** Stops listening, drops TCP connections and ends forwards in flight. Idempotent. */
  close(): Promise<void> {
    this.closed ??= this.shutDown();
    return this.closed;
  }

  private async shutDown(): Promise<void> {
    this.closing.abort();
    const closedTcp = new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
    for (const c of this.connections) c.destroy();
    const closedUdp = new Promise<void>((resolve) => (this.udp ? this.udp.close(() => resolve()) : resolve()));
    await Promise.all([closedTcp, closedUdp]);
  }

  private bindUdp(address: string, port: number): Promise<UdpSocket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket(isIPv6(address) ? "udp6" : "udp4");
      socket.once("error", reject);
      socket.bind(port, address, () => {
        socket.off("error", reject);
        socket.on("error", (err) => this.log.warn({ err }, "cluster DNS UDP socket error"));
        socket.on("message", (query, from) => this.onDatagram(socket, query, from));
        resolve(socket);
      });
    });
  }

  private bindTcp(address: string, port: number): Promise<Server> {
    return new Promise((resolve, reject) => {
      const server = createServer((socket) => this.onConnection(socket));
      server.maxConnections = MAX_TCP_CONNECTIONS;
      server.once("error", reject);
      server.listen(port, address, () => {
        server.off("error", reject);
        server.on("error", (err) => this.log.warn({ err }, "cluster DNS TCP server error"));
        resolve(server);
      });
    });
  }

  private onDatagram(socket: UdpSocket, query: Buffer, from: RemoteInfo): void {
    void this.answer(query, "udp", `${from.address}:${from.port}`).then((reply) => {
      if (!reply || this.closing.signal.aborted) return;
      socket.send(reply, from.port, from.address, (err) => {
        if (err) this.log.debug({ err, to: from.address }, "cluster DNS reply not sent");
      });
    });
  }

  private onConnection(socket: TcpSocket): void {
    this.connections.add(socket);
    const from = `${socket.remoteAddress}:${socket.remotePort}`;
    const frames = new FrameReader();
    let inFlight = 0;
    socket.setTimeout(this.tcpIdleTimeoutMs, () => socket.destroy());
    socket.on("error", (err) => this.log.debug({ err, from }, "cluster DNS TCP connection error"));
    socket.on("close", () => this.connections.delete(socket));
    socket.on("data", (chunk) => {
      for (const query of frames.push(chunk)) {
        if (++inFlight >= MAX_QUERIES_IN_FLIGHT_PER_CONNECTION) socket.pause();
        void this.answer(query, "tcp", from).then((reply) => {
          if (--inFlight < MAX_QUERIES_IN_FLIGHT_PER_CONNECTION) socket.resume();
          // Replies may leave out of order when some are forwarded; clients match them by id (RFC 7766 §7).
          if (reply && !socket.destroyed) socket.write(framed(reply));
        });
      }
    });
  }

  /** The reply to one raw query, or undefined when it deserves none. Never rejects. */
  private async answer(query: Buffer, transport: Transport, from: string): Promise<Buffer | undefined> {
    try {
      return await this.reply(query, transport, from);
    } catch (err) {
      // A bug, not a client's fault: still answer, so the client does not wait for its timeout.
      this.log.warn({ err, from }, "cluster DNS failed to answer a query");
      return query.length >= HEADER_BYTES ? headerOnlyReply(query, this.flags("SERVFAIL")) : undefined;
    }
  }

  private async reply(query: Buffer, transport: Transport, from: string): Promise<Buffer | undefined> {
    // Without a whole header there is no id to reply to; a response sent to us must not be answered (no loops).
    if (query.length < HEADER_BYTES || isResponse(query)) return undefined;
    if (opcodeOf(query) !== 0) return headerOnlyReply(query, this.flags("NOTIMP"));
    let packet: DecodedPacket;
    try {
      packet = decode(query);
    } catch (err) {
      this.log.debug({ err, from }, "malformed DNS query");
      return headerOnlyReply(query, this.flags("FORMERR"));
    }
    const question = packet.questions?.[0];
    if (!question || packet.questions?.length !== 1) return headerOnlyReply(query, this.flags("FORMERR"));
    const limit = transport === "udp" ? udpLimit(packet) : MAX_TCP_MESSAGE;

    const zone = answerQuestion(question, this.o.lookup(), this.domain);
    if (zone) {
      const flags = { ...this.flags(zone.rcode), authoritative: zone.rcode !== "REFUSED" };
      return encodeWithin(buildReply(packet, flags, zone), limit);
    }

    const failure = (rcode: Rcode): Buffer => encodeWithin(buildReply(packet, this.flags(rcode)), limit);
    const upstream = this.o.upstream;
    if (!upstream) {
      this.log.debug({ name: question.name, type: question.type, from }, "no upstream DNS configured; refusing");
      return failure("REFUSED");
    }
    if (this.forwardsInFlight >= MAX_FORWARDS_IN_FLIGHT) {
      this.log.debug({ name: question.name, from }, "too many queries waiting on the upstream DNS");
      return failure("SERVFAIL");
    }
    this.forwardsInFlight++;
    try {
      const relayed = await forwardQuery(query, {
        upstream,
        transport,
        timeoutMs: this.upstreamTimeoutMs,
        signal: this.closing.signal,
      });
      if (relayed) return relayed;
      this.log.debug({ name: question.name, upstream, from }, "upstream DNS gave no answer (timeout or error)");
      return failure("SERVFAIL");
    } finally {
      this.forwardsInFlight--;
    }
  }

  private flags(rcode: Rcode): ReplyFlags {
    return { rcode, authoritative: false, recursionAvailable: this.o.upstream !== undefined };
  }
}
