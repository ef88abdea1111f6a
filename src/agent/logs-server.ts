// The agent's own gRPC endpoint, called only by masters (they present the agent API token from the join).
import { status, type ServerWritableStream } from "@grpc/grpc-js";
import type * as grpc from "@grpc/grpc-js";
import { AgentServiceService } from "../gen/flotilla/v1/agent.js";
import type { LogChunk, LogsRequest } from "../gen/flotilla/v1/pod.js";
import { addHealthAndReflection } from "../api/serve.js";
import type { Runtime } from "./runtime/runtime.js";

function fail(call: ServerWritableStream<LogsRequest, LogChunk>, code: status, details: string): void {
  call.destroy(Object.assign(new Error(details), { code, details }));
}

export function addAgentService(server: grpc.Server, runtime: Runtime, currentToken: () => string): void {
  server.addService(AgentServiceService, {
    containerLogs: (call: ServerWritableStream<LogsRequest, LogChunk>) => {
      void streamLogs(call, runtime, currentToken).catch((e: Error) => fail(call, status.INTERNAL, e.message));
    },
  });
  addHealthAndReflection(server, ["flotilla.v1.AgentService"], ["flotilla/v1/agent.proto"]);
}

async function streamLogs(call: ServerWritableStream<LogsRequest, LogChunk>, runtime: Runtime, currentToken: () => string) {
  const presented = String(call.metadata.get("authorization")[0] ?? "").replace(/^Bearer /, "");
  if (!presented || presented !== currentToken()) return fail(call, status.UNAUTHENTICATED, "only masters may read logs here");
  const req = call.request;
  const mine = (await runtime.list()).filter((c) => c.podName === req.name && c.namespace === req.namespace);
  const names = [...new Set(mine.map((c) => c.containerName))];
  const containerName = req.container || (names.length === 1 ? names[0] : "");
  if (!containerName) {
    const reason = names.length ? `choose one of: ${names.join(", ")}` : "it has no containers on this node yet";
    return fail(call, status.INVALID_ARGUMENT, `container: pod "${req.name}" ${reason}`);
  }
  const latest = mine.filter((c) => c.containerName === containerName).sort((a, b) => b.attempt - a.attempt)[0];
  if (!latest) return fail(call, status.NOT_FOUND, `container "${containerName}" of pod "${req.name}" is not on this node`);
  const controller = new AbortController();
  call.on("cancelled", () => controller.abort());
  for await (const chunk of runtime.logs(latest.id, { follow: req.follow, tailLines: req.tailLines, signal: controller.signal })) {
    if (controller.signal.aborted) break;
    call.write({ stream: chunk.stream, data: chunk.data });
  }
  call.end();
}
