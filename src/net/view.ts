// Turns the API objects into the view the node's network pieces act on (types.ts): each service port with the ready
// addresses its Endpoints list for it, and each Ingress's rules. Pure: the watcher calls it on every change.
import type { Ingress } from "../gen/flotilla/v1/ingress.js";
import type { Endpoints, Service } from "../gen/flotilla/v1/service.js";
import type { ClusterNetworkView, IngressView, Protocol, ServiceView } from "./types.js";

/** "namespace/name", as objects are keyed everywhere. */
export const objectKey = (o: { metadata?: { namespace: string; name: string } | undefined }) => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

/** "80" → 80; a port name stays a name. */
function portRef(text: string): number | string {
  return /^\d+$/.test(text) ? Number(text) : text;
}

export function buildNetworkView(services: Iterable<Service>, endpoints: Iterable<Endpoints>, ingresses: Iterable<Ingress>): ClusterNetworkView {
  const endpointsByService = new Map([...endpoints].map((e) => [objectKey(e), e]));
  const serviceViews: ServiceView[] = [];
  for (const svc of services) {
    const spec = svc.spec;
    if (!spec) continue;
    const ep = endpointsByService.get(objectKey(svc));
    serviceViews.push({
      namespace: svc.metadata?.namespace ?? "",
      name: svc.metadata?.name ?? "",
      clusterIp: spec.clusterIp,
      sessionAffinity: spec.sessionAffinity === "ClientIP" ? "ClientIP" : "None",
      ports: spec.ports.map((p) => {
        const protocol: Protocol = p.protocol === "UDP" ? "UDP" : "TCP";
        const ready = ep?.ports.find((e) => e.name === p.name && e.port === p.port && (e.protocol || "TCP") === protocol)?.ready ?? [];
        return {
          name: p.name,
          port: p.port,
          protocol,
          nodePort: spec.type === "NodePort" ? p.nodePort : 0,
          backends: ready.map((a) => ({ address: a.ip, port: a.port, pod: `${svc.metadata?.namespace}/${a.pod}`, node: a.node })),
        };
      }),
    });
  }
  const ingressViews: IngressView[] = [...ingresses].map((ing) => ({
    namespace: ing.metadata?.namespace ?? "",
    name: ing.metadata?.name ?? "",
    rules: (ing.spec?.rules ?? []).map((r) => ({
      host: r.host,
      paths: r.paths.map((p) => ({ pathPrefix: p.pathPrefix || "/", service: p.backend?.service ?? "", port: portRef(p.backend?.port ?? "") })),
    })),
    ...(ing.spec?.defaultBackend ? { defaultBackend: { service: ing.spec.defaultBackend.service, port: portRef(ing.spec.defaultBackend.port) } } : {}),
  }));
  const byName = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`);
  return { services: serviceViews.sort(byName), ingresses: ingressViews.sort(byName) };
}
