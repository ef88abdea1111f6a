// What a Service's Endpoints should say, from the pods its selector matches: for each service port, where each pod's
// target port is published on its node, split into ready and not-ready pods. Pure, so the controller's decisions
// are unit-tested without a store.
import type { EndpointAddress, EndpointPort, Service } from "../../gen/flotilla/v1/service.js";
import type { Pod } from "../../gen/flotilla/v1/pod.js";
import { isPodReady } from "../../api/pod-status.js";

/** Whether the service's selector picks this pod: same namespace, every selector label present (empty: none). */
export function selects(service: Service, pod: Pod): boolean {
  const selector = service.spec?.selector ?? {};
  const keys = Object.keys(selector);
  if (keys.length === 0 || pod.metadata?.namespace !== service.metadata?.namespace) return false;
  const labels = pod.metadata?.labels ?? {};
  return keys.every((k) => labels[k] === selector[k]);
}

/** A pod counts once it has a node and until it has finished. */
function candidate(pod: Pod): boolean {
  const phase = pod.status?.phase ?? "";
  return !!pod.spec?.nodeName && phase !== "Succeeded" && phase !== "Failed";
}

/** The address and port where the pod answers the service port's targetPort, or undefined (not published yet). */
function addressOf(pod: Pod, targetPort: string, protocol: string): EndpointAddress | undefined {
  const byNumber = /^\d+$/.test(targetPort);
  const published = (pod.status?.ports ?? []).find(
    (p) => (p.protocol || "TCP") === protocol && p.hostPort > 0 && (byNumber ? p.containerPort === Number(targetPort) : p.name === targetPort),
  );
  if (!published) return undefined;
  const specific = published.hostIp && published.hostIp !== "0.0.0.0" ? published.hostIp : "";
  const ip = specific || pod.status?.hostIp || "";
  if (!ip) return undefined;
  return { ip, port: published.hostPort, pod: pod.metadata?.name ?? "", node: pod.spec?.nodeName ?? "" };
}

export function planEndpoints(service: Service, pods: Pod[]): EndpointPort[] {
  const chosen = pods.filter((p) => selects(service, p) && candidate(p)).sort((a, b) => (a.metadata!.name < b.metadata!.name ? -1 : 1));
  return (service.spec?.ports ?? []).map((sp) => {
    const protocol = sp.protocol || "TCP";
    const port: EndpointPort = { name: sp.name, port: sp.port, protocol, ready: [], notReady: [] };
    for (const pod of chosen) {
      const address = addressOf(pod, sp.targetPort || String(sp.port), protocol);
      if (!address) continue;
      (isPodReady(pod) ? port.ready : port.notReady).push(address);
    }
    return port;
  });
}
