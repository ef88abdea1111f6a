// Cluster-level calls: scale, join tokens, the agent join and heartbeat, version.
import { status } from "@grpc/grpc-js";
import type {
  CreateTokenRequest,
  CreateTokenResponse,
  HeartbeatRequest,
  HeartbeatResponse,
  JoinRequest,
  JoinResponse,
  ScaleRequest,
  ScaleResponse,
} from "../../gen/flotilla/v1/cluster.js";
import type { Deployment } from "../../gen/flotilla/v1/deployment.js";
import type { Condition } from "../../gen/flotilla/v1/meta.js";
import type { Node } from "../../gen/flotilla/v1/node.js";
import type { Credentials } from "../auth/tokens.js";
import { ApiError, invalidField, permissionDenied } from "../errors.js";
import type { Registry } from "../registry.js";
import type { CallContext } from "./call.js";

/** The masters behind the store: a Raft group, or one in-memory master. */
export interface ClusterMembership {
  memberList(): Promise<{ name: string; raftAddress: string; isLearner: boolean; isLeader: boolean }[]>;
  /** Adds a learner; returns the Raft group's id. */
  addMember(name: string, raftAddress: string): Promise<string>;
  removeMember(name: string): Promise<void>;
  snapshotBytes(): Promise<Uint8Array>;
}

export const inMemoryMembership: ClusterMembership = {
  async memberList() {
    return [{ name: "master", raftAddress: "", isLearner: false, isLeader: true }];
  },
  async addMember() {
    throw new ApiError(status.FAILED_PRECONDITION, "this master keeps its store in memory: there is no Raft group to join (start it with --init)");
  },
  async removeMember() {
    throw new ApiError(status.FAILED_PRECONDITION, "this master keeps its store in memory: there is no Raft group to change (start masters with --initial-cluster)");
  },
  async snapshotBytes() {
    throw new ApiError(status.FAILED_PRECONDITION, "this master keeps its store in memory and cannot snapshot it (start masters with --initial-cluster)");
  },
};

export interface ClusterDeps {
  membership: ClusterMembership;
  nodes: Registry<Node>;
  deployments: Registry<Deployment>;
  credentials: Credentials;
  heartbeatIntervalSeconds: number;
  agentApiToken: string;
  now: () => Date;
}

const DEPLOYMENT_KINDS = ["deployment", "deployments", "deploy"];

export async function scale(deps: ClusterDeps, req: ScaleRequest): Promise<ScaleResponse> {
  if (!DEPLOYMENT_KINDS.includes(req.kind.toLowerCase())) {
    throw invalidField("kind", `"${req.kind}" cannot be scaled; supported: Deployment`);
  }
  if (!Number.isInteger(req.replicas) || req.replicas < 0) {
    throw invalidField("replicas", `${req.replicas} must be an integer >= 0`);
  }
  if (!req.name) throw invalidField("name", "is required");
  const updated = await deps.deployments.mutate(req.namespace, req.name, (d) => {
    if (d.spec!.replicas === req.replicas) return undefined;
    d.spec!.replicas = req.replicas;
    return d;
  });
  return { replicas: updated.spec!.replicas ?? 0, resourceVersion: updated.metadata!.resourceVersion };
}

export async function createToken(deps: ClusterDeps, req: CreateTokenRequest): Promise<CreateTokenResponse> {
  if (req.ttlSeconds < 0n) throw invalidField("ttlSeconds", "must be >= 0 (0 means the default of 24 hours)");
  return deps.credentials.createJoinToken(Number(req.ttlSeconds), req.description);
}

/** Registers (or re-registers, for a rebuilt machine with the same hostname) a node, and issues its credential. */
export async function join(deps: ClusterDeps, req: JoinRequest): Promise<JoinResponse> {
  const offered = req.node;
  const name = offered?.metadata?.name ?? "";
  if (!offered || !name) throw invalidField("node.metadata.name", "is required (the node's hostname)");
  const now = deps.now().toISOString();
  const status = { ...offered.status!, conditions: [readyCondition("True", "AgentJoined", "the agent joined", now, undefined)] };
  const existing = await deps.nodes.maybeGet("", name);
  if (existing) {
    await deps.nodes.mutate("", name, (node) => {
      node.metadata!.labels = { ...node.metadata!.labels, ...offered.metadata!.labels };
      node.status = status;
      return node;
    });
  } else {
    await deps.nodes.create({ ...offered, spec: offered.spec ?? { unschedulable: false }, status });
  }
  const credential = await deps.credentials.issueNodeCredential(name);
  return {
    nodeName: name,
    credential,
    heartbeatIntervalSeconds: deps.heartbeatIntervalSeconds,
    agentApiToken: deps.agentApiToken,
  };
}

export async function heartbeat(deps: ClusterDeps, req: HeartbeatRequest, ctx: CallContext): Promise<HeartbeatResponse> {
  if (ctx.principal.role !== "node" || ctx.principal.nodeName !== req.nodeName) {
    throw permissionDenied(`a node may only heartbeat as itself, not as "${req.nodeName}"`);
  }
  const now = deps.now().toISOString();
  await deps.nodes.mutate("", req.nodeName, (node) => {
    const st = node.status!;
    st.usage = req.usage;
    if (req.daemonEndpoint) st.daemonEndpoint = req.daemonEndpoint;
    const previous = st.conditions.find((c) => c.type === "Ready");
    const ready = readyCondition("True", "AgentReady", "the agent is posting heartbeats", now, previous);
    st.conditions = [...st.conditions.filter((c) => c.type !== "Ready"), ready];
    return node;
  }).catch((e: unknown) => {
    if (e instanceof ApiError && e.code === status.NOT_FOUND) {
      throw new ApiError(status.NOT_FOUND, `node "${req.nodeName}" is not registered; join again`);
    }
    throw e;
  });
  return { heartbeatIntervalSeconds: deps.heartbeatIntervalSeconds, agentApiToken: deps.agentApiToken };
}

export function readyCondition(
  value: "True" | "False" | "Unknown",
  reason: string,
  message: string,
  now: string,
  previous: Condition | undefined,
): Condition {
  return {
    type: "Ready",
    status: value,
    reason,
    message,
    lastHeartbeatTime: value === "True" ? now : (previous?.lastHeartbeatTime ?? now),
    lastTransitionTime: previous?.status === value ? previous.lastTransitionTime : now,
  };
}
