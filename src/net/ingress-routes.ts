// Where the HTTP ingress sends a request: a pure function of the cluster view, the request's host and its path, kept
// apart from the server (src/net/ingress-server.ts) so every routing rule is testable with a literal view.
//
// Rules, across all Ingresses of the view:
// - A rule's host is compared without the port, case-insensitively; rules naming the request's host are tried first,
//   and rules with the catch-all host "" only when none of them has a matching path.
// - Within that tier the longest matching path prefix wins ("/api" matches "/api" and "/api/x", never "/apix");
//   on a tie the first in view order wins, so the choice is stable.
// - Nothing matching: the first Ingress (in view order) with a default backend gets the request; none has one: 404.
// - The chosen service port has no ready backend (or the service or the port does not exist): 503. A matched rule
//   never falls through to the default backend, so an outage is visible rather than routed elsewhere.
import type { Backend, ClusterNetworkView, ServicePortView, ServiceView } from "./types.js";

/** The request can be proxied: to one of `backends` (never empty). */
export interface BackendsRoute {
  kind: "backends";
  /** Identifies the service port for round-robin state: "namespace/name:port". */
  key: string;
  /** "service default/web port 80", for messages and logs. */
  target: string;
  backends: Backend[];
}

/** The request cannot be proxied: answer `status` with `message` (which names what was looked for). */
export interface RejectRoute {
  kind: "reject";
  status: 404 | 503;
  message: string;
}

export type IngressRoute = BackendsRoute | RejectRoute;

/** A service port an Ingress points at, in the Ingress's namespace. */
interface ServiceRef {
  namespace: string;
  service: string;
  port: number | string;
}

/** Picks where a request for `host` (the Host header as received, if any) and `path` (no query) goes. */
export function routeRequest(view: ClusterNetworkView, host: string | undefined, path: string): IngressRoute {
  const bareHost = normalizeHost(host ?? "");
  const ref = matchRule(view, bareHost, path) ?? defaultBackend(view);
  if (!ref) {
    return { kind: "reject", status: 404, message: `no ingress rule matches host ${JSON.stringify(bareHost)} path ${JSON.stringify(path)}` };
  }
  return resolveService(view, ref);
}

/** The host of a Host header without its port and trailing dot, lower-cased ("[::1]:80" gives "[::1]"). */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    h = end < 0 ? h : h.slice(0, end + 1);
  } else if (h.indexOf(":") === h.lastIndexOf(":")) {
    // Exactly one colon is host:port; more would be a bare IPv6 address, which has no port to strip.
    const colon = h.indexOf(":");
    if (colon >= 0) h = h.slice(0, colon);
  }
  return h.endsWith(".") ? h.slice(0, -1) : h;
}

/** True when `path` is `prefix` or below it; trailing slashes of the prefix do not matter and "/" matches all. */
export function matchesPathPrefix(prefix: string, path: string): boolean {
  const p = trimTrailingSlashes(prefix);
  return p === "" || path === p || path.startsWith(`${p}/`);
}

/**
 * The host and path a request-target names: the path without query or fragment, and for the absolute form
 * ("http://h/x", sent to proxies) the URL's authority instead of the Host header (RFC 7230 section 5.4).
 */
export function requestTarget(url: string | undefined, hostHeader: string | undefined): { host: string | undefined; path: string } {
  let rest = url ?? "/";
  let host = hostHeader;
  const scheme = /^https?:\/\//i.exec(rest);
  if (scheme) {
    rest = rest.slice(scheme[0].length);
    const authorityEnd = rest.search(/[/?#]/);
    host = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
    rest = authorityEnd < 0 ? "/" : rest.slice(authorityEnd);
  }
  const queryStart = rest.search(/[?#]/);
  const path = queryStart < 0 ? rest : rest.slice(0, queryStart);
  return { host, path: path === "" ? "/" : path };
}

function matchRule(view: ClusterNetworkView, bareHost: string, path: string): ServiceRef | undefined {
  const exact = (ruleHost: string) => ruleHost !== "" && normalizeHost(ruleHost) === bareHost;
  const catchAll = (ruleHost: string) => ruleHost === "";
  return longestPrefixMatch(view, exact, path) ?? longestPrefixMatch(view, catchAll, path);
}

function longestPrefixMatch(view: ClusterNetworkView, hostMatches: (ruleHost: string) => boolean, path: string): ServiceRef | undefined {
  let best: { ref: ServiceRef; length: number } | undefined;
  for (const ingress of view.ingresses) {
    for (const rule of ingress.rules) {
      if (!hostMatches(rule.host)) continue;
      for (const p of rule.paths) {
        if (!matchesPathPrefix(p.pathPrefix, path)) continue;
        const length = trimTrailingSlashes(p.pathPrefix).length;
        if (best && length <= best.length) continue;
        best = { ref: { namespace: ingress.namespace, service: p.service, port: p.port }, length };
      }
    }
  }
  return best?.ref;
}

function defaultBackend(view: ClusterNetworkView): ServiceRef | undefined {
  const ingress = view.ingresses.find((i) => i.defaultBackend);
  if (!ingress?.defaultBackend) return undefined;
  return { namespace: ingress.namespace, service: ingress.defaultBackend.service, port: ingress.defaultBackend.port };
}

function resolveService(view: ClusterNetworkView, ref: ServiceRef): IngressRoute {
  const target = `service ${ref.namespace}/${ref.service} port ${ref.port}`;
  const unavailable = (why: string): RejectRoute => ({ kind: "reject", status: 503, message: `no ready endpoint for ${target}${why}` });
  const service = view.services.find((s) => s.namespace === ref.namespace && s.name === ref.service);
  if (!service) return unavailable(" (no such service)");
  const port = findTcpPort(service, ref.port);
  if (!port) return unavailable(" (the service has no such TCP port)");
  if (port.backends.length === 0) return unavailable("");
  return { kind: "backends", key: `${ref.namespace}/${ref.service}:${port.port}`, target, backends: port.backends };
}

function findTcpPort(service: ServiceView, port: number | string): ServicePortView | undefined {
  return service.ports.find((p) => p.protocol === "TCP" && (typeof port === "number" ? p.port === port : p.name === port));
}

function trimTrailingSlashes(prefix: string): string {
  return prefix.replace(/\/+$/, "");
}
