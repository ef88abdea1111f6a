// The node's HTTP ingress: a node:http server that sends each request, as the cluster's Ingress rules say
// (src/net/ingress-routes.ts), to a ready backend of the chosen service port, and streams the answer back.
//
// Invariants:
// - The view is read through lookup() on every request, so a change applies to the very next request; the only
//   state kept between requests is each service port's round-robin position (and idle keep-alive connections).
// - Bodies are piped both ways, never held whole: memory per request is bounded by the streams' buffers.
// - A request body is piped to a backend only once the connection to it is up, so a refused (or timed-out)
//   connection has consumed nothing and the next backend is tried, bodies or not. A bodiless request is also resent
//   when a reused keep-alive connection turns out to be closed before any response byte. A request with a body
//   goes on a connection of its own, never a reused one: a backend closing an idle keep-alive connection just as
//   the body is sent would have consumed a body that cannot be sent again (a 502 for a request it never saw).
//   Nothing else is retried.
// - Failures are answered as "<status> <reason>\n" text naming what was looked for: 404 no rule, 503 no ready
//   endpoint, 502 no backend reachable or one failed before answering. After the response has begun, a failure can
//   only cut the connection.
// - Hop-by-hop headers (RFC 7230 section 6.1: Connection and what it names, Keep-Alive, TE, Trailer,
//   Transfer-Encoding, Upgrade, Proxy-*) never cross the ingress; node:http reframes the body on each hop. The
//   client's Host is kept; X-Forwarded-For (appended to), X-Forwarded-Proto and X-Forwarded-Host are set.
// - Upgrade requests (WebSocket) pass through: after the backend's 101 the two sockets are piped to each other.
// - Trailers are not forwarded.
import { Agent, createServer, request, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { requestTarget, routeRequest, type BackendsRoute, type IngressRoute } from "./ingress-routes.js";
import type { Backend, ClusterNetworkView } from "./types.js";

/** The part of a pino logger the ingress uses. */
export interface IngressLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface IngressServerOptions {
  /** Where to listen; port 0 picks a free port (see `port`). */
  listen: { address: string; port: number };
  /** The current view, read on every request. */
  lookup: () => ClusterNetworkView;
  log?: IngressLog;
  /** How long a backend may take to accept a connection before the next one is tried (default 5000 ms). */
  connectTimeoutMs?: number;
}

const silent: IngressLog = { info: () => {}, warn: () => {} };

/** RFC 7230 section 6.1, plus the proxy headers that concern only the hop to (or from) a proxy. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"]);

export class IngressServer {
  private readonly server: Server;
  /** Keep-alive connections to backends, shared by all requests. */
  private readonly agent = new Agent({ keepAlive: true });
  private readonly roundRobin = new Map<string, number>();
  /** Upgraded sockets (both sides), which the HTTP server no longer tracks, so close() can end them. */
  private readonly tunnels = new Set<Duplex>();
  private readonly log: IngressLog;
  private readonly connectTimeoutMs: number;

  constructor(private readonly options: IngressServerOptions) {
    this.log = options.log ?? silent;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.server = createServer((req, res) => this.proxyRequest(req, res));
    this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.proxyUpgrade(req, socket, head));
  }

  /** Starts listening; rejects when the address cannot be bound. */
  async listen(): Promise<void> {
    const { address, port } = this.options.listen;
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, address, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.server.on("error", (err) => this.log.warn({ err }, "ingress server error"));
    this.log.info({ address, port: this.port }, "ingress listening");
  }

  /** The bound port (the real one when listen.port was 0). */
  get port(): number {
    const a = this.server.address();
    if (!a || typeof a === "string") throw new Error("the ingress is not listening");
    return a.port;
  }

  /** Stops listening and cuts every connection, requests in flight and tunnels included. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const socket of this.tunnels) socket.destroy();
    this.agent.destroy();
    await closed;
  }

  private route(req: IncomingMessage): IngressRoute {
    const { host, path } = requestTarget(req.url, req.headers.host);
    return routeRequest(this.options.lookup(), host, path);
  }

  /** Where this service port's next request starts trying backends. */
  private nextStart(route: BackendsRoute): number {
    const turn = this.roundRobin.get(route.key) ?? 0;
    this.roundRobin.set(route.key, (turn + 1) % 1_000_000_007);
    return turn % route.backends.length;
  }

  private proxyRequest(req: IncomingMessage, res: ServerResponse): void {
    const route = this.route(req);
    if (route.kind === "reject") {
      req.resume();
      sendText(res, route.status, route.message);
      return;
    }
    const bodiless = !hasBody(req);
    if (bodiless) req.resume();
    const headers = forwardedRequestHeaders(req);
    const start = this.nextStart(route);
    let upstream: ClientRequest | undefined;
    // The client went away: stop whatever is in flight to the backend.
    res.once("close", () => {
      if (!res.writableFinished) upstream?.destroy();
    });

    const tryBackend = (attempt: number): void => {
      if (res.destroyed) return;
      if (attempt === route.backends.length) {
        this.log.warn({ target: route.target, tried: attempt }, "ingress: no backend accepted the connection");
        sendText(res, 502, `no backend of ${route.target} accepted the connection (${attempt} tried)`);
        return;
      }
      const backend = route.backends[(start + attempt) % route.backends.length]!;
      const up = request({ host: backend.address, port: backend.port, method: req.method, path: req.url, headers, agent: bodiless ? this.agent : false });
      upstream = up;
      let connected = false;
      let failed = false;
      whenConnected(up, this.connectTimeoutMs, () => {
        connected = true;
        if (!bodiless) req.pipe(up);
      });
      up.on("response", (upRes: IncomingMessage) => {
        // A backend that dies mid-body must not look like a complete response: cut the client's connection too.
        upRes.on("close", () => {
          if (!upRes.complete) res.destroy();
        });
        upRes.on("error", () => res.destroy());
        if (res.destroyed) return void upRes.resume();
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage || undefined, forwardedResponseHeaders(upRes.headers));
        upRes.pipe(res);
      });
      up.on("error", (err: NodeJS.ErrnoException) => {
        // A stream can report more than one error; only the first decides. A gone client needs no answer.
        if (failed || res.destroyed) return;
        failed = true;
        req.unpipe(up);
        const untouched = !connected || (bodiless && up.reusedSocket && err.code === "ECONNRESET");
        if (!res.headersSent && untouched) {
          this.log.warn({ target: route.target, backend: describe(backend), err: err.code ?? err.message }, "ingress: backend unreachable, trying the next");
          tryBackend(attempt + 1);
        } else if (!res.headersSent) {
          this.log.warn({ target: route.target, backend: describe(backend), err: err.code ?? err.message }, "ingress: backend failed before answering");
          sendText(res, 502, `backend ${describe(backend)} of ${route.target} failed before answering: ${err.message}`);
        } else {
          res.destroy();
        }
      });
      if (bodiless) up.end();
    };
    tryBackend(0);
  }

  private proxyUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.track(socket);
    socket.on("error", () => socket.destroy());
    const route = this.route(req);
    if (route.kind === "reject") {
      endWithText(socket, route.status, route.message);
      return;
    }
    const headers = forwardedRequestHeaders(req);
    headers.connection = "upgrade";
    headers.upgrade = req.headers.upgrade;
    const start = this.nextStart(route);

    const tryBackend = (attempt: number): void => {
      if (socket.destroyed) return;
      if (attempt === route.backends.length) {
        this.log.warn({ target: route.target, tried: attempt }, "ingress: no backend accepted the upgrade connection");
        endWithText(socket, 502, `no backend of ${route.target} accepted the connection (${attempt} tried)`);
        return;
      }
      const backend = route.backends[(start + attempt) % route.backends.length]!;
      // Its own connection: an upgraded socket leaves the pool anyway.
      const up = request({ host: backend.address, port: backend.port, method: req.method, path: req.url, headers, agent: false });
      let connected = false;
      let failed = false;
      socket.once("close", () => up.destroy());
      whenConnected(up, this.connectTimeoutMs, () => (connected = true));
      up.on("upgrade", (upRes: IncomingMessage, upSocket: Socket, upHead: Buffer) => {
        if (socket.destroyed) return void upSocket.destroy();
        this.track(upSocket);
        upSocket.on("error", () => socket.destroy());
        socket.on("close", () => upSocket.destroy());
        upSocket.on("close", () => socket.destroy());
        socket.write(`HTTP/1.1 101 ${upRes.statusMessage ?? "Switching Protocols"}\r\n${rawHeaderLines(upRes.rawHeaders)}\r\n`);
        if (upHead.length > 0) socket.write(upHead);
        if (head.length > 0) upSocket.write(head);
        upSocket.pipe(socket).pipe(upSocket);
      });
      // The backend declined the upgrade: relay its answer, then close (the client's socket is no longer HTTP-managed).
      up.on("response", (upRes: IncomingMessage) => {
        upRes.on("error", () => socket.destroy());
        const status = `HTTP/1.1 ${upRes.statusCode ?? 502} ${upRes.statusMessage ?? ""}\r\n`;
        socket.write(`${status}${headerLines(forwardedResponseHeaders(upRes.headers))}connection: close\r\n\r\n`);
        upRes.pipe(socket);
      });
      up.on("error", (err: NodeJS.ErrnoException) => {
        if (failed || socket.destroyed) return;
        failed = true;
        if (!connected) {
          this.log.warn({ target: route.target, backend: describe(backend), err: err.code ?? err.message }, "ingress: backend unreachable, trying the next");
          tryBackend(attempt + 1);
        } else {
          endWithText(socket, 502, `backend ${describe(backend)} of ${route.target} failed before answering: ${err.message}`);
        }
      });
      up.end();
    };
    tryBackend(0);
  }

  private track(socket: Duplex): void {
    this.tunnels.add(socket);
    socket.once("close", () => this.tunnels.delete(socket));
  }
}

/** Calls onConnected once `up` has a connected socket; gives up (an ETIMEDOUT error on `up`) after timeoutMs. */
function whenConnected(up: ClientRequest, timeoutMs: number, onConnected: () => void): void {
  up.once("socket", (socket: Socket) => {
    if (!socket.connecting) return onConnected();
    const timer = setTimeout(() => up.destroy(Object.assign(new Error(`no connection within ${timeoutMs} ms`), { code: "ETIMEDOUT" })), timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      onConnected();
    });
    socket.once("close", () => clearTimeout(timer));
  });
}

/** Whether the request carries a body (a Content-Length above 0 or a Transfer-Encoding). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** The end-to-end headers of a message: without the hop-by-hop ones and those its Connection header names. */
export function endToEndHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set(
    (headers.connection ?? "")
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t !== ""),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** What a backend is sent: the client's end-to-end headers (Host kept), the body's framing and X-Forwarded-*. */
export function forwardedRequestHeaders(req: IncomingMessage): OutgoingHttpHeaders {
  const out = endToEndHeaders(req.headers);
  // node:http has already answered "100 Continue" to the client; the backend must not wait for it again.
  delete out.expect;
  reframe(req.headers, out, { keepPlainChunked: true });
  const client = clientAddress(req.socket.remoteAddress);
  const prior = req.headers["x-forwarded-for"];
  out["x-forwarded-for"] = prior ? `${prior}, ${client}` : client;
  out["x-forwarded-proto"] = "http";
  if (req.headers.host !== undefined) out["x-forwarded-host"] = req.headers.host;
  else delete out["x-forwarded-host"];
  return out;
}

/** What the client is sent of a backend's headers: the end-to-end ones and the body's framing. */
export function forwardedResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out = endToEndHeaders(headers);
  // Plain chunked is left to node:http, which picks chunked or close-delimited by the client's HTTP version.
  reframe(headers, out, { keepPlainChunked: false });
  return out;
}

/**
 * Puts back the framing headers endToEndHeaders dropped (a Connection header naming Content-Length must not change
 * how the body is delimited). node:http decodes "chunked" on the way in and encodes it again on the way out when
 * the outgoing Transfer-Encoding says chunked; other codings in it pass through untouched.
 */
function reframe(incoming: IncomingHttpHeaders, out: OutgoingHttpHeaders, opts: { keepPlainChunked: boolean }): void {
  delete out["content-length"];
  const te = incoming["transfer-encoding"];
  if (te !== undefined) {
    // A Transfer-Encoding overrides any Content-Length (RFC 7230 section 3.3.3).
    if (opts.keepPlainChunked || te.trim().toLowerCase() !== "chunked") out["transfer-encoding"] = te;
  } else if (incoming["content-length"] !== undefined) {
    out["content-length"] = incoming["content-length"];
  }
}

/** The client's address as it is usually written: IPv4 without its IPv6-mapped prefix. */
function clientAddress(remote: string | undefined): string {
  if (!remote) return "unknown";
  return remote.startsWith("::ffff:") && remote.includes(".") ? remote.slice("::ffff:".length) : remote;
}

function describe(backend: Backend): string {
  return `${backend.address}:${backend.port} (${backend.pod})`;
}

function sendText(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) return void res.destroy();
  const body = `${status} ${message}\n`;
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), "x-content-type-options": "nosniff" });
  res.end(body);
}

/** Answers on a raw socket (an upgrade request) and closes it. */
function endWithText(socket: Duplex, status: number, message: string): void {
  const body = `${status} ${message}\n`;
  const reason = status === 404 ? "Not Found" : status === 503 ? "Service Unavailable" : "Bad Gateway";
  const headers = { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), "x-content-type-options": "nosniff", connection: "close" };
  socket.end(`HTTP/1.1 ${status} ${reason}\r\n${headerLines(headers)}\r\n${body}`);
}

function headerLines(headers: OutgoingHttpHeaders): string {
  let lines = "";
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) lines += `${name}: ${v}\r\n`;
  }
  return lines;
}

function rawHeaderLines(raw: string[]): string {
  let lines = "";
  for (let i = 0; i + 1 < raw.length; i += 2) lines += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return lines;
}
