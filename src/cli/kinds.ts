// Kind names as users type them (kubectl's plurals, singulars and short names), and typed API calls per kind.
import type { ApiClient } from "../api/client.js";
import { Deployment, type DeploymentList } from "../gen/flotilla/v1/deployment.js";
import type { DeleteResponse } from "../gen/flotilla/v1/meta.js";
import { Node, type NodeList } from "../gen/flotilla/v1/node.js";
import { Pod, type PodList } from "../gen/flotilla/v1/pod.js";
import { Endpoints, type EndpointsList, Service, type ServiceList } from "../gen/flotilla/v1/service.js";
import { Ingress, type IngressList } from "../gen/flotilla/v1/ingress.js";

export type KindName = "Pod" | "Node" | "Deployment" | "Service" | "Endpoints" | "Ingress";

const ALIASES: Record<string, KindName> = {
  pod: "Pod", pods: "Pod", po: "Pod",
  node: "Node", nodes: "Node", no: "Node",
  deployment: "Deployment", deployments: "Deployment", deploy: "Deployment",
  service: "Service", services: "Service", svc: "Service",
  endpoints: "Endpoints", ep: "Endpoints",
  ingress: "Ingress", ingresses: "Ingress", ing: "Ingress",
};

export function resolveKind(text: string): KindName {
  const kind = ALIASES[text.toLowerCase()];
  if (!kind) throw new Error(`unknown resource type "${text}"; use one of: pods (po), nodes (no), deployments (deploy), services (svc), endpoints (ep), ingresses (ing)`);
  return kind;
}

/** "deployment/web" or ("deployment", "web"). */
export function resolveTarget(first: string, second?: string): { kind: KindName; name: string } {
  if (first.includes("/")) {
    const [k, name] = first.split("/", 2);
    if (!name) throw new Error(`"${first}" must be TYPE/NAME`);
    return { kind: resolveKind(k), name };
  }
  if (!second) throw new Error(`name a ${first}: TYPE NAME or TYPE/NAME`);
  return { kind: resolveKind(first), name: second };
}

export const namespaced = (kind: KindName) => kind !== "Node";

export type AnyObject = Pod | Node | Deployment | Service | Endpoints | Ingress;

function readOnly(kind: KindName, verb: string): never {
  throw new Error(`${kind} objects are kept by the endpoints controller: they cannot be ${verb} (change the Service or its pods instead)`);
}

export async function listObjects(client: ApiClient, kind: KindName, namespace: string, labelSelector = "", fieldSelector = ""): Promise<AnyObject[]> {
  const req = { namespace, labelSelector, fieldSelector };
  switch (kind) {
    case "Pod":
      return (await client.call<PodList>((s, md, o, cb) => s.pods.listPods(req, md, o, cb))).items;
    case "Node":
      return (await client.call<NodeList>((s, md, o, cb) => s.nodes.listNodes(req, md, o, cb))).items;
    case "Deployment":
      return (await client.call<DeploymentList>((s, md, o, cb) => s.deployments.listDeployments(req, md, o, cb))).items;
    case "Service":
      return (await client.call<ServiceList>((s, md, o, cb) => s.services.listServices(req, md, o, cb))).items;
    case "Endpoints":
      return (await client.call<EndpointsList>((s, md, o, cb) => s.endpoints.listEndpoints(req, md, o, cb))).items;
    case "Ingress":
      return (await client.call<IngressList>((s, md, o, cb) => s.ingresses.listIngresses(req, md, o, cb))).items;
  }
}

export async function getObject(client: ApiClient, kind: KindName, namespace: string, name: string): Promise<AnyObject> {
  const req = { namespace, name };
  switch (kind) {
    case "Pod":
      return client.call<Pod>((s, md, o, cb) => s.pods.getPod(req, md, o, cb));
    case "Node":
      return client.call<Node>((s, md, o, cb) => s.nodes.getNode(req, md, o, cb));
    case "Deployment":
      return client.call<Deployment>((s, md, o, cb) => s.deployments.getDeployment(req, md, o, cb));
    case "Service":
      return client.call<Service>((s, md, o, cb) => s.services.getService(req, md, o, cb));
    case "Endpoints":
      return client.call<Endpoints>((s, md, o, cb) => s.endpoints.getEndpoints(req, md, o, cb));
    case "Ingress":
      return client.call<Ingress>((s, md, o, cb) => s.ingresses.getIngress(req, md, o, cb));
  }
}

export async function deleteObject(client: ApiClient, kind: KindName, namespace: string, name: string): Promise<void> {
  const req = { namespace, name, resourceVersion: "" };
  switch (kind) {
    case "Pod":
      await client.call<DeleteResponse>((s, md, o, cb) => s.pods.deletePod(req, md, o, cb));
      return;
    case "Node":
      await client.call<DeleteResponse>((s, md, o, cb) => s.nodes.deleteNode(req, md, o, cb));
      return;
    case "Deployment":
      await client.call<DeleteResponse>((s, md, o, cb) => s.deployments.deleteDeployment(req, md, o, cb));
      return;
    case "Service":
      await client.call<DeleteResponse>((s, md, o, cb) => s.services.deleteService(req, md, o, cb));
      return;
    case "Endpoints":
      return readOnly(kind, "deleted");
    case "Ingress":
      await client.call<DeleteResponse>((s, md, o, cb) => s.ingresses.deleteIngress(req, md, o, cb));
  }
}

export async function applyObject(client: ApiClient, kind: KindName, object: AnyObject): Promise<AnyObject> {
  switch (kind) {
    case "Pod":
      return client.call<Pod>((s, md, o, cb) => s.pods.applyPod(object as Pod, md, o, cb));
    case "Node":
      return client.call<Node>((s, md, o, cb) => s.nodes.applyNode(object as Node, md, o, cb));
    case "Deployment":
      return client.call<Deployment>((s, md, o, cb) => s.deployments.applyDeployment(object as Deployment, md, o, cb));
    case "Service":
      return client.call<Service>((s, md, o, cb) => s.services.applyService(object as Service, md, o, cb));
    case "Endpoints":
      return readOnly(kind, "applied");
    case "Ingress":
      return client.call<Ingress>((s, md, o, cb) => s.ingresses.applyIngress(object as Ingress, md, o, cb));
  }
}

export const CODECS = { Pod, Node, Deployment, Service, Endpoints, Ingress };
