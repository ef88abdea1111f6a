// The ingress's routing decisions on literal views: host and path matching, precedence, default backend, 404, 503.
import { describe, expect, it } from "vitest";
import { matchesPathPrefix, normalizeHost, requestTarget, routeRequest, type IngressRoute } from "../../src/net/ingress-routes.js";
import type { Backend, ClusterNetworkView, IngressView, ServiceView } from "../../src/net/types.js";

function backend(pod: string, port = 8080): Backend {
  return { address: "10.0.0.1", port, pod: `default/${pod}`, node: "n1" };
}

function service(name: string, backends: Backend[], namespace = "default"): ServiceView {
  return {
    namespace,
    name,
    clusterIp: "10.96.0.10",
    sessionAffinity: "None",
    ports: [{ name: "http", port: 80, protocol: "TCP", nodePort: 0, backends }],
  };
}

/** The pod names a route sends to, or its status and message. */
function outcome(route: IngressRoute): string[] | string {
  return route.kind === "backends" ? route.backends.map((b) => b.pod) : `${route.status} ${route.message}`;
}

const services = ["web", "api", "api-v2", "admin", "fallback", "shop"].map((n) => service(n, [backend(n)]));

const ingress: IngressView = {
  namespace: "default",
  name: "main",
  rules: [
    { host: "", paths: [{ pathPrefix: "/", service: "web", port: 80 }, { pathPrefix: "/api", service: "api", port: 80 }] },
    { host: "shop.example.com", paths: [{ pathPrefix: "/", service: "shop", port: "http" }] },
    { host: "", paths: [{ pathPrefix: "/api/v2/", service: "api-v2", port: 80 }] },
  ],
};

describe("routeRequest", () => {
  const view: ClusterNetworkView = { services, ingresses: [ingress] };

  it("picks the longest matching path prefix, on whole segments", () => {
    expect(outcome(routeRequest(view, "x", "/"))).toEqual(["default/web"]);
    expect(outcome(routeRequest(view, "x", "/api"))).toEqual(["default/api"]);
    expect(outcome(routeRequest(view, "x", "/api/users"))).toEqual(["default/api"]);
    expect(outcome(routeRequest(view, "x", "/apix"))).toEqual(["default/web"]);
    expect(outcome(routeRequest(view, "x", "/api/v2"))).toEqual(["default/api-v2"]);
    expect(outcome(routeRequest(view, "x", "/api/v2/orders"))).toEqual(["default/api-v2"]);
    expect(outcome(routeRequest(view, "x", "/api/v20"))).toEqual(["default/api"]);
  });

  it("prefers a rule naming the host over the catch-all, ignoring case and port", () => {
    expect(outcome(routeRequest(view, "shop.example.com", "/api"))).toEqual(["default/shop"]);
    expect(outcome(routeRequest(view, "Shop.Example.COM:8080", "/"))).toEqual(["default/shop"]);
    expect(outcome(routeRequest(view, "shop.example.com.", "/"))).toEqual(["default/shop"]);
    expect(outcome(routeRequest(view, "other.example.com", "/"))).toEqual(["default/web"]);
    expect(outcome(routeRequest(view, undefined, "/api"))).toEqual(["default/api"]);
  });

  it("falls back to the catch-all host when the named host has no matching path", () => {
    const v: ClusterNetworkView = {
      services,
      ingresses: [
        {
          namespace: "default",
          name: "i",
          rules: [
            { host: "a.test", paths: [{ pathPrefix: "/admin", service: "admin", port: 80 }] },
            { host: "", paths: [{ pathPrefix: "/", service: "web", port: 80 }] },
          ],
        },
      ],
    };
    expect(outcome(routeRequest(v, "a.test", "/admin/x"))).toEqual(["default/admin"]);
    expect(outcome(routeRequest(v, "a.test", "/other"))).toEqual(["default/web"]);
  });

  it("combines the rules of every Ingress and resolves services in the Ingress's namespace", () => {
    const shopInProd = service("shop", [backend("prod-shop")], "prod");
    const v: ClusterNetworkView = {
      services: [...services, shopInProd],
      ingresses: [ingress, { namespace: "prod", name: "p", rules: [{ host: "", paths: [{ pathPrefix: "/shop", service: "shop", port: 80 }] }] }],
    };
    expect(outcome(routeRequest(v, "x", "/shop/cart"))).toEqual(["default/prod-shop"]);
  });

  it("sends what matches no rule to the default backend, else answers 404 naming host and path", () => {
    const onlyHost: IngressView = { namespace: "default", name: "h", rules: [{ host: "a.test", paths: [{ pathPrefix: "/", service: "web", port: 80 }] }] };
    expect(outcome(routeRequest({ services, ingresses: [onlyHost] }, "b.test:80", "/y"))).toBe('404 no ingress rule matches host "b.test" path "/y"');
    expect(outcome(routeRequest({ services, ingresses: [] }, undefined, "/"))).toBe('404 no ingress rule matches host "" path "/"');

    const withDefault: IngressView = { ...onlyHost, defaultBackend: { service: "fallback", port: "http" } };
    expect(outcome(routeRequest({ services, ingresses: [onlyHost, withDefault] }, "b.test", "/y"))).toEqual(["default/fallback"]);
    expect(outcome(routeRequest({ services, ingresses: [withDefault] }, "a.test", "/y"))).toEqual(["default/web"]);
  });

  it("answers 503 naming the service port when it has no ready endpoint, does not exist or lacks the port", () => {
    const v: ClusterNetworkView = { services: [service("web", [])], ingresses: [ingress] };
    expect(outcome(routeRequest(v, "x", "/"))).toBe("503 no ready endpoint for service default/web port 80");
    expect(outcome(routeRequest(v, "x", "/api"))).toBe("503 no ready endpoint for service default/api port 80 (no such service)");
    const wrongPort: ClusterNetworkView = {
      services: [service("web", [backend("web")])],
      ingresses: [{ namespace: "default", name: "i", rules: [{ host: "", paths: [{ pathPrefix: "/", service: "web", port: 81 }] }] }],
    };
    expect(outcome(routeRequest(wrongPort, "x", "/"))).toBe("503 no ready endpoint for service default/web port 81 (the service has no such TCP port)");
  });

  it("does not fall through to the default backend when the matched service is down", () => {
    const v: ClusterNetworkView = {
      services: [service("web", []), service("fallback", [backend("fallback")])],
      ingresses: [{ ...ingress, defaultBackend: { service: "fallback", port: 80 } }],
    };
    expect(routeRequest(v, "x", "/")).toMatchObject({ kind: "reject", status: 503 });
  });

  it("keys round-robin state by the resolved service port number", () => {
    const byName: IngressView = { namespace: "default", name: "n", rules: [{ host: "", paths: [{ pathPrefix: "/", service: "web", port: "http" }] }] };
    expect(routeRequest({ services, ingresses: [byName] }, "x", "/")).toMatchObject({
      kind: "backends",
      key: "default/web:80",
      target: "service default/web port http",
    });
  });
});

describe("routing helpers", () => {
  it("normalizes hosts", () => {
    expect(normalizeHost("Example.COM:8080")).toBe("example.com");
    expect(normalizeHost("[::1]:8080")).toBe("[::1]");
    expect(normalizeHost("::1")).toBe("::1");
    expect(normalizeHost("")).toBe("");
  });

  it("matches path prefixes on segment boundaries", () => {
    expect(matchesPathPrefix("/", "/anything")).toBe(true);
    expect(matchesPathPrefix("", "/anything")).toBe(true);
    expect(matchesPathPrefix("/api", "/api")).toBe(true);
    expect(matchesPathPrefix("/api/", "/api")).toBe(true);
    expect(matchesPathPrefix("/api", "/api/")).toBe(true);
    expect(matchesPathPrefix("/api", "/apix")).toBe(false);
    expect(matchesPathPrefix("/api", "/")).toBe(false);
  });

  it("reads host and path from origin-form and absolute-form targets", () => {
    expect(requestTarget("/a/b?x=1#f", "h.test")).toEqual({ host: "h.test", path: "/a/b" });
    expect(requestTarget("?x", "h.test")).toEqual({ host: "h.test", path: "/" });
    expect(requestTarget("http://other.test:81/api?q", "h.test")).toEqual({ host: "other.test:81", path: "/api" });
    expect(requestTarget("HTTP://other.test", undefined)).toEqual({ host: "other.test", path: "/" });
  });
});
