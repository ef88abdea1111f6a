// One UDP listener of the userspace proxy: a socket bound to a VIP:port (or nodeAddress:nodePort) that gives each
// client address (ip:port) a session, i.e. its own socket connected to one backend, and sends the backend's replies
// back to the client from the listener's address (so a client with a connected socket accepts them).
//
// Invariants:
// - A session lives until it has been idle (no datagram either way) for idleTimeoutMs, or its backend reports an
//   error (an ICMP port unreachable surfaces as ECONNREFUSED), or its backend leaves the route (dropStaleSessions:
//   UDP has no close, so a session to a gone pod would swallow the client's datagrams for ever). The client's next
//   datagram then opens a new session to a backend chosen afresh.
// - A datagram for a route with no backends is dropped (UDP has nothing to refuse with).
// - Sessions are bounded (maxSessions); the least recently active one is ended to make room.
// - Datagrams that arrive while a session's socket is still connecting are queued (bounded) and sent in order.
// - close() ends the listener and all its sessions: the replies of a session can only leave through the listener.
import * as dgram from "node:dgram";
import { isIPv6 } from "node:net";
import { backendKey } from "./balancer.js";
import type { Backend } from "./types.js";
import type { Route, UserspaceLog } from "./userspace-route.js";

export interface UdpListenerOptions {
  address: string;
  port: number;
  route: Route | undefined;
  idleTimeoutMs: number;
  maxSessions: number;
  log: UserspaceLog;
}

/** Datagrams queued per session while its socket connects; more are dropped (UDP may lose them anyway). */
const MAX_PENDING_DATAGRAMS = 64;

interface Client {
  address: string;
  port: number;
}

export class UdpListener {
  /** Where new sessions go; the proxy swaps it when the listener is reused for another service port. */
  route: Route | undefined;
  /** By client ip|port, least recently active first. */
  private readonly sessions = new Map<string, UdpSession>();
  private readonly idleTimeoutMs: number;
  private readonly maxSessions: number;
  private readonly log: UserspaceLog;

  private constructor(
    private readonly socket: dgram.Socket,
    options: UdpListenerOptions,
  ) {
    this.route = options.route;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.maxSessions = Math.max(1, options.maxSessions);
    this.log = options.log;
    socket.on("message", (msg, rinfo) => this.receive(msg, { address: rinfo.address, port: rinfo.port }));
    socket.on("error", (err) => this.log.warn({ err, address: options.address, port: options.port }, "proxy UDP listener error"));
  }

  /** Binds address:port; rejects if the address cannot be bound (in use, not local). */
  static async open(options: UdpListenerOptions): Promise<UdpListener> {
    const socket = dgram.createSocket(isIPv6(options.address) ? "udp6" : "udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind({ address: options.address, port: options.port }, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    return new UdpListener(socket, options);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Ends the sessions whose backend is no longer in the route (or all of them if there is no route). */
  dropStaleSessions(): void {
    for (const session of [...this.sessions.values()]) {
      if (this.route === undefined || session.route !== this.route || !this.route.balancer.has(session.key)) session.end();
    }
  }

  async close(): Promise<void> {
    for (const session of [...this.sessions.values()]) session.end();
    await new Promise<void>((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }

  private receive(msg: Buffer, client: Client): void {
    const id = `${client.address}|${client.port}`;
    let session = this.sessions.get(id);
    if (session !== undefined) {
      this.sessions.delete(id); // re-inserted below: most recently active last
    } else {
      const route = this.route;
      const backend = route?.balancer.pick(client.address);
      if (route === undefined || backend === undefined) return;
      if (this.sessions.size >= this.maxSessions) this.sessions.values().next().value?.end();
      session = new UdpSession(route, backend, client, {
        idleTimeoutMs: this.idleTimeoutMs,
        reply: (data) => this.socket.send(data, client.port, client.address, () => {}),
        ended: (s) => {
          if (this.sessions.get(id) === s) this.sessions.delete(id);
        },
        log: this.log,
      });
    }
    this.sessions.set(id, session);
    session.send(msg);
  }
}

interface SessionHooks {
  idleTimeoutMs: number;
  reply: (data: Buffer) => void;
  ended: (session: UdpSession) => void;
  log: UserspaceLog;
}

class UdpSession {
  readonly key: string;
  private readonly socket: dgram.Socket;
  private readonly timer: NodeJS.Timeout;
  private pending: Buffer[] | undefined = [];
  private done = false;

  constructor(
    readonly route: Route,
    backend: Backend,
    client: Client,
    private readonly hooks: SessionHooks,
  ) {
    this.key = backendKey(backend);
    route.balancer.connectionOpened(this.key);
    this.timer = setTimeout(() => this.end(), hooks.idleTimeoutMs);
    this.timer.unref();
    this.socket = dgram.createSocket(isIPv6(backend.address) ? "udp6" : "udp4");
    this.socket.on("message", (data) => {
      this.timer.refresh();
      hooks.reply(data);
    });
    this.socket.on("error", (err) => {
      if (this.done) return;
      hooks.log.warn(
        { err, service: route.label, backend: this.key, pod: backend.pod, client: `${client.address}:${client.port}` },
        "UDP backend error; ending the session",
      );
      this.end();
    });
    this.socket.connect(backend.port, backend.address, () => {
      const queued = this.pending ?? [];
      this.pending = undefined;
      for (const data of queued) this.transmit(data);
    });
  }

  send(data: Buffer): void {
    if (this.done) return;
    this.timer.refresh();
    if (this.pending === undefined) this.transmit(data);
    else if (this.pending.length < MAX_PENDING_DATAGRAMS) this.pending.push(data);
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.pending = undefined;
    try {
      this.socket.close();
    } catch {
      // already closed
    }
    this.route.balancer.connectionClosed(this.key);
    this.hooks.ended(this);
  }

  private transmit(data: Buffer): void {
    if (this.done) return;
    // A send error (ECONNREFUSED from an earlier ICMP) ends the session, like an "error" event.
    this.socket.send(data, (err) => {
      if (err) this.socket.emit("error", err);
    });
  }
}
