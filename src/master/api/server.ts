// Assembles the master's gRPC server: one handler table per service, each call passing through the edge in
// call.ts (authentication, authorization, metrics, error mapping).
import type * as grpc from "@grpc/grpc-js";
import { ClusterServiceService, type ClusterServiceServer } from "../../gen/flotilla/v1/cluster.js";
import { DeploymentServiceService, type DeploymentServiceServer } from "../../gen/flotilla/v1/deployment.js";
import { NodeServiceService, type NodeServiceServer } from "../../gen/flotilla/v1/node.js";
import { PodServiceService, type PodServiceServer, type Pod } from "../../gen/flotilla/v1/pod.js";
import type { Deployment } from "../../gen/flotilla/v1/deployment.js";
import { IngressServiceService, type Ingress, type IngressServiceServer } from "../../gen/flotilla/v1/ingress.js";
import {
  EndpointsServiceService,
  ServiceServiceService,
  type Endpoints,
  type EndpointsServiceServer,
  type Service,
  type ServiceServiceServer,
} from "../../gen/flotilla/v1/service.js";
import type { ServiceAllocator } from "../service-allocator.js";
import { serviceHandlers } from "./service-objects.js";
import { addHealthAndReflection } from "../../api/serve.js";
import { invalidField, permissionDenied } from "../errors.js";
import type { Registry } from "../registry.js";
import { type EdgeDeps, type Role, serverStream, unary } from "./call.js";
import { type ClusterDeps, createToken, heartbeat, join, scale } from "./cluster-service.js";
import { objectHandlers } from "./object-service.js";
import { proxyPodLogs } from "./pod-logs.js";
import { VERSION } from "../../api/version.js";

export interface ApiDeps extends EdgeDeps, ClusterDeps {
  pods: Registry<Pod>;
  services: Registry<Service>;
  endpoints: Registry<Endpoints>;
  ingresses: Registry<Ingress>;
  allocator: ServiceAllocator;
}

const ADMIN: Role[] = ["admin"];
const ADMIN_OR_NODE: Role[] = ["admin", "node"];

export function addMasterServices(server: grpc.Server, deps: ApiDeps): void {
  server.addService(PodServiceService, podService(deps));
  server.addService(NodeServiceService, nodeService(deps));
  server.addService(DeploymentServiceService, deploymentService(deps));
  server.addService(ClusterServiceService, clusterService(deps));
  server.addService(ServiceServiceService, serviceService(deps));
  server.addService(EndpointsServiceService, endpointsService(deps));
  server.addService(IngressServiceService, ingressService(deps));
  addHealthAndReflection(server, [
    "flotilla.v1.PodService",
    "flotilla.v1.NodeService",
    "flotilla.v1.DeploymentService",
    "flotilla.v1.ClusterService",
    "flotilla.v1.ServiceService",
    "flotilla.v1.EndpointsService",
    "flotilla.v1.IngressService",
  ], [
    "flotilla/v1/pod.proto",
    "flotilla/v1/node.proto",
    "flotilla/v1/deployment.proto",
    "flotilla/v1/cluster.proto",
    "flotilla/v1/service.proto",
    "flotilla/v1/ingress.proto",
  ]);
}

function podService(deps: ApiDeps): PodServiceServer {
  const h = objectHandlers(deps.pods, "spec.nodeName");
  const s = "PodService";
  return {
    createPod: unary(deps, s, "CreatePod", ADMIN, (pod) => h.create(pod)),
    applyPod: unary(deps, s, "ApplyPod", ADMIN, (pod) => h.apply(pod)),
    getPod: unary(deps, s, "GetPod", ADMIN_OR_NODE, async (req, ctx) => {
      const pod = await h.get(req);
      if (ctx.principal.role === "node" && pod.spec?.nodeName !== ctx.principal.nodeName) {
        throw permissionDenied(`pod "${req.name}" is not bound to node "${ctx.principal.nodeName}"`);
      }
      return pod;
    }),
    listPods: unary(deps, s, "ListPods", ADMIN_OR_NODE, (req, ctx) => h.list(req, ctx)),
    deletePod: unary(deps, s, "DeletePod", ADMIN, (req) => h.delete(req)),
    watchPods: serverStream(deps, s, "WatchPods", ADMIN_OR_NODE, (req, call, ctx) => h.watch(req, call, ctx)),
    updatePodStatus: unary(deps, s, "UpdatePodStatus", ADMIN_OR_NODE, async (pod, ctx) => {
      if (ctx.principal.role === "node") {
        const current = await deps.pods.get(pod.metadata?.namespace ?? "", pod.metadata?.name ?? "");
        if (current.spec?.nodeName !== ctx.principal.nodeName) {
          throw permissionDenied(`pod "${pod.metadata?.name}" is not bound to node "${ctx.principal.nodeName}"`);
        }
      }
      return deps.pods.updateStatus(pod);
    }),
    podLogs: serverStream(deps, s, "PodLogs", ADMIN, (req, call, ctx) =>
      proxyPodLogs(deps.pods, deps.nodes, deps.agentApiToken, req, call, ctx),
    ),
  };
}

function nodeService(deps: ApiDeps): NodeServiceServer {
  const h = objectHandlers(deps.nodes);
  const s = "NodeService";
  return {
    createNode: unary(deps, s, "CreateNode", ADMIN, (n) => h.create(n)),
    applyNode: unary(deps, s, "ApplyNode", ADMIN, (n) => h.apply(n)),
    getNode: unary(deps, s, "GetNode", ADMIN_OR_NODE, (req) => h.get(req)),
    listNodes: unary(deps, s, "ListNodes", ADMIN_OR_NODE, (req, ctx) => h.list(req, ctx)),
    deleteNode: unary(deps, s, "DeleteNode", ADMIN, (req) => h.delete(req)),
    watchNodes: serverStream(deps, s, "WatchNodes", ADMIN_OR_NODE, (req, call, ctx) => h.watch(req, call, ctx)),
    updateNodeStatus: unary(deps, s, "UpdateNodeStatus", ADMIN_OR_NODE, async (node, ctx) => {
      if (ctx.principal.role === "node" && node.metadata?.name !== ctx.principal.nodeName) {
        throw permissionDenied(`a node may only update its own status, not "${node.metadata?.name}"`);
      }
      return deps.nodes.updateStatus(node);
    }),
  };
}

function deploymentService(deps: ApiDeps): DeploymentServiceServer {
  const h = objectHandlers<Deployment>(deps.deployments);
  const s = "DeploymentService";
  return {
    createDeployment: unary(deps, s, "CreateDeployment", ADMIN, (d) => h.create(d)),
    applyDeployment: unary(deps, s, "ApplyDeployment", ADMIN, (d) => h.apply(d)),
    getDeployment: unary(deps, s, "GetDeployment", ADMIN, (req) => h.get(req)),
    listDeployments: unary(deps, s, "ListDeployments", ADMIN, (req, ctx) => h.list(req, ctx)),
    deleteDeployment: unary(deps, s, "DeleteDeployment", ADMIN, (req) => h.delete(req)),
    watchDeployments: serverStream(deps, s, "WatchDeployments", ADMIN, (req, call, ctx) => h.watch(req, call, ctx)),
  };
}

function serviceService(deps: ApiDeps): ServiceServiceServer {
  const h = objectHandlers<Service>(deps.services);
  const a = serviceHandlers(deps.services, deps.allocator, h);
  const s = "ServiceService";
  return {
    createService: unary(deps, s, "CreateService", ADMIN, (svc) => a.create(svc)),
    applyService: unary(deps, s, "ApplyService", ADMIN, (svc) => a.apply(svc)),
    getService: unary(deps, s, "GetService", ADMIN_OR_NODE, (req) => h.get(req)),
    listServices: unary(deps, s, "ListServices", ADMIN_OR_NODE, (req, ctx) => h.list(req, ctx)),
    deleteService: unary(deps, s, "DeleteService", ADMIN, (req) => a.delete(req)),
    // Every node's proxy and DNS need every service.
    watchServices: serverStream(deps, s, "WatchServices", ADMIN_OR_NODE, (req, call, ctx) => h.watch(req, call, ctx)),
  };
}

/** Read-only: the endpoints controller writes them. */
function endpointsService(deps: ApiDeps): EndpointsServiceServer {
  const h = objectHandlers<Endpoints>(deps.endpoints);
  const s = "EndpointsService";
  return {
    getEndpoints: unary(deps, s, "GetEndpoints", ADMIN_OR_NODE, (req) => h.get(req)),
    listEndpoints: unary(deps, s, "ListEndpoints", ADMIN_OR_NODE, (req, ctx) => h.list(req, ctx)),
    watchEndpoints: serverStream(deps, s, "WatchEndpoints", ADMIN_OR_NODE, (req, call, ctx) => h.watch(req, call, ctx)),
  };
}

function ingressService(deps: ApiDeps): IngressServiceServer {
  const h = objectHandlers<Ingress>(deps.ingresses);
  const s = "IngressService";
  return {
    createIngress: unary(deps, s, "CreateIngress", ADMIN, (ing) => h.create(ing)),
    applyIngress: unary(deps, s, "ApplyIngress", ADMIN, (ing) => h.apply(ing)),
    getIngress: unary(deps, s, "GetIngress", ADMIN_OR_NODE, (req) => h.get(req)),
    listIngresses: unary(deps, s, "ListIngresses", ADMIN_OR_NODE, (req, ctx) => h.list(req, ctx)),
    deleteIngress: unary(deps, s, "DeleteIngress", ADMIN, (req) => h.delete(req)),
    watchIngresses: serverStream(deps, s, "WatchIngresses", ADMIN_OR_NODE, (req, call, ctx) => h.watch(req, call, ctx)),
  };
}

function clusterService(deps: ApiDeps): ClusterServiceServer {
  const s = "ClusterService";
  return {
    scale: unary(deps, s, "Scale", ADMIN, (req) => scale(deps, req)),
    createToken: unary(deps, s, "CreateToken", ADMIN, (req) => createToken(deps, req)),
    join: unary(deps, s, "Join", ["joiner", "admin"], (req) => join(deps, req)),
    heartbeat: unary(deps, s, "Heartbeat", ["node"], (req, ctx) => heartbeat(deps, req, ctx)),
    listMembers: unary(deps, s, "ListMembers", ADMIN_OR_NODE, async () => ({ members: await deps.membership.memberList() })),
    addMember: unary(deps, s, "AddMember", ADMIN, async (req) => {
      if (!req.name) throw invalidField("name", "is required");
      if (!/^[^:\s]+:\d+$/.test(req.raftAddress)) throw invalidField("raftAddress", `"${req.raftAddress}" must be HOST:PORT`);
      const clusterId = await deps.membership.addMember(req.name, req.raftAddress);
      return { members: await deps.membership.memberList(), clusterId };
    }),
    removeMember: unary(deps, s, "RemoveMember", ADMIN, async (req) => {
      if (!req.name) throw invalidField("name", "is required");
      await deps.membership.removeMember(req.name);
      return { members: await deps.membership.memberList() };
    }),
    saveSnapshot: serverStream(deps, s, "SaveSnapshot", ADMIN, async (_req, call) => {
      const bytes = await deps.membership.snapshotBytes();
      const CHUNK = 1024 * 1024;
      const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let at = 0; at < buffer.length; at += CHUNK) call.write({ data: buffer.subarray(at, at + CHUNK) });
    }),
    version: unary(deps, s, "Version", ["admin", "node", "joiner"], async () => ({
      version: VERSION,
      revision: String(await deps.pods.currentRevision()),
    })),
  };
}
