// `PodLogs` is proxied to the agent that runs the pod, as the Kubernetes API server proxies to the kubelet.
import { credentials as grpcCredentials, Metadata, status, type ServerWritableStream } from "@grpc/grpc-js";
import { AgentServiceClient } from "../../gen/flotilla/v1/agent.js";
import type { Node } from "../../gen/flotilla/v1/node.js";
import type { LogChunk, LogsRequest, Pod } from "../../gen/flotilla/v1/pod.js";
import { ApiError, invalidField } from "../errors.js";
import type { Registry } from "../registry.js";
import type { CallContext } from "./call.js";

export async function proxyPodLogs(
  pods: Registry<Pod>,
  nodes: Registry<Node>,
  agentApiToken: string,
  req: LogsRequest,
  call: ServerWritableStream<LogsRequest, LogChunk>,
  ctx: CallContext,
): Promise<void> {
  if (!req.name) throw invalidField("name", "is required");
  const pod = await pods.get(req.namespace, req.name);
  const nodeName = pod.spec?.nodeName;
  if (!nodeName) throw new ApiError(status.FAILED_PRECONDITION, `pod "${req.name}" is not scheduled yet, so it has no logs`);
  const node = await nodes.get("", nodeName);
  const endpoint = node.status?.daemonEndpoint;
  if (!endpoint) throw new ApiError(status.UNAVAILABLE, `node "${nodeName}" has not reported its agent endpoint`);
  const client = new AgentServiceClient(endpoint, grpcCredentials.createInsecure());
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${agentApiToken}`);
  const upstream = client.containerLogs({ ...req, namespace: pod.metadata!.namespace }, metadata);
  ctx.signal.addEventListener("abort", () => upstream.cancel());
  try {
    await new Promise<void>((resolve, reject) => {
      upstream.on("data", (chunk: LogChunk) => call.write(chunk));
      upstream.on("end", resolve);
      upstream.on("error", (e: Error & { code?: number }) => {
        if (e.code === status.CANCELLED && ctx.signal.aborted) resolve();
        else reject(new ApiError(e.code ?? status.UNAVAILABLE, `node "${nodeName}": ${e.message.replace(/^\d+ \w+: /, "")}`));
      });
    });
  } finally {
    client.close();
  }
}
