// One TCP listener of the userspace proxy (a VIP:port or a nodeAddress:nodePort): accepts a client, connects to a
// backend chosen by the route's balancer and splices the two sockets until both sides are done.
//
// Invariants:
// - A backend that fails to connect (refused, unreachable, or no answer within connectTimeoutMs) is skipped and the
//   next one tried, each backend at most once per client; only when none is left is the client reset (RST). A route
//   with no backends resets the client at once, so a client never hangs on a dead service. The last backend left
//   gets lastConnectTimeoutMs: a SYN dropped by a full accept queue is retried by the kernel after 1 s, and with
//   nowhere else to go, waiting for that beats resetting the client.
// - The client is not read until its backend is connected (pauseOnConnect), so nothing is lost during failover.
// - Half-closes pass through (allowHalfOpen on both sides): a client that sends FIN still gets the whole reply.
// - An error on either side resets the other. A normal close on one side never cuts data still in flight on the
//   other.
// - close() only stops accepting: connections already spliced keep going until either side ends them (draining);
//   the proxy tracks them in `connections` to end them on its own close().
import * as net from "node:net";
import { backendKey } from "./balancer.js";
import type { Backend } from "./types.js";
import type { Destroyable, Route, UserspaceLog } from "./userspace-route.js";

export interface TcpListenerOptions {
  address: string;
  port: number;
  route: Route | undefined;
  connectTimeoutMs: number;
  lastConnectTimeoutMs: number;
  /** Every open proxied socket (client or upstream) is added here while open. */
  connections: Set<Destroyable>;
  log: UserspaceLog;
}

export class TcpListener {
  /** Where new connections go; the proxy swaps it when the listener is reused for another service port. */
  route: Route | undefined;
  private readonly connectTimeoutMs: number;
  private readonly lastConnectTimeoutMs: number;
  private readonly connections: Set<Destroyable>;
  private readonly log: UserspaceLog;

  private constructor(
    private readonly server: net.Server,
    options: TcpListenerOptions,
  ) {
    this.route = options.route;
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.lastConnectTimeoutMs = Math.max(options.connectTimeoutMs, options.lastConnectTimeoutMs);
    this.connections = options.connections;
    this.log = options.log;
    server.on("connection", (client: net.Socket) => this.accept(client));
    server.on("error", (err) => this.log.warn({ err, address: options.address, port: options.port }, "proxy TCP listener error"));
  }

  /** Binds address:port; rejects if the address cannot be bound (in use, not local). */
  static async open(options: TcpListenerOptions): Promise<TcpListener> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: options.address, port: options.port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return new TcpListener(server, options);
  }

  /** Stops accepting (the port is free when this resolves). Open connections are left to finish. */
  async close(): Promise<void> {
    this.server.close();
  }

  private accept(client: net.Socket): void {
    track(this.connections, client);
    client.setNoDelay(true);
    void this.forward(client);
  }

  private async forward(client: net.Socket): Promise<void> {
    const clientIp = client.remoteAddress ?? "";
    const tried = new Set<string>();
    while (!client.destroyed) {
      const route = this.route;
      const backend = route?.balancer.pick(clientIp, tried);
      if (route === undefined || backend === undefined) break;
      const key = backendKey(backend);
      tried.add(key);
      route.balancer.connectionOpened(key);
      const timeoutMs = route.balancer.untried(tried) > 0 ? this.connectTimeoutMs : this.lastConnectTimeoutMs;
      let upstream: net.Socket;
      try {
        upstream = await connectUpstream(backend, timeoutMs, this.connections);
      } catch (err) {
        route.balancer.connectionClosed(key);
        this.log.warn({ err, service: route.label, backend: key, pod: backend.pod }, "backend did not accept a connection; trying the next");
        continue;
      }
      splice(client, upstream, () => route.balancer.connectionClosed(key));
      return;
    }
    if (tried.size > 0 && !client.destroyed) {
      this.log.warn({ service: this.route?.label, tried: [...tried], client: clientIp }, "no backend accepted the connection; resetting the client");
    }
    reset(client);
  }
}

function track(connections: Set<Destroyable>, socket: net.Socket): void {
  connections.add(socket);
  socket.once("close", () => connections.delete(socket));
  // Errors end in "close"; the splice reacts to them. Without a listener an error would crash the process.
  socket.on("error", () => {});
}

/** Ends a socket with a RST (so the peer sees ECONNRESET, not a clean end) unless it is already gone. */
function reset(socket: net.Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

function connectUpstream(backend: Backend, timeoutMs: number, connections: Set<Destroyable>): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: backend.address, port: backend.port, allowHalfOpen: true });
    track(connections, socket);
    const timer = setTimeout(() => {
      socket.destroy(Object.assign(new Error(`connect timed out after ${timeoutMs} ms`), { code: "ETIMEDOUT" }));
    }, timeoutMs);
    const settle = (): void => {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const onConnect = (): void => {
      settle();
      resolve(socket);
    };
    const onError = (err: Error): void => {
      settle();
      reject(err);
    };
    // Destroyed without an error: the proxy is closing.
    const onClose = (): void => {
      settle();
      reject(new Error("closed while connecting"));
    };
    socket.once("connect", onConnect);
    socket.once("error", onError);
    socket.once("close", onClose);
  });
}

/** Pipes both ways until both sides are done; calls onClosed once, when the upstream socket is gone. */
function splice(client: net.Socket, upstream: net.Socket, onClosed: () => void): void {
  upstream.setNoDelay(true);
  upstream.once("close", onClosed);
  if (client.destroyed) {
    upstream.destroy();
    return;
  }
  client.on("error", () => reset(upstream));
  upstream.on("error", () => reset(client));
  // A close without an error is either a finished connection (nothing to do: the other side finishes by itself)
  // or a destroy() by the proxy, which destroys both.
  client.once("close", (hadError) => {
    if (hadError) reset(upstream);
  });
  upstream.once("close", (hadError) => {
    if (hadError) reset(client);
  });
  client.pipe(upstream);
  upstream.pipe(client);
}
