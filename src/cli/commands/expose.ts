// `flotilla expose deployment/NAME --port P [--target-port T] [--type NodePort]`: a Service whose selector is the
// Deployment's, as kubectl expose makes one.
import type { ApiClient } from "../../api/client.js";
import type { Deployment } from "../../gen/flotilla/v1/deployment.js";
import { Service } from "../../gen/flotilla/v1/service.js";
import { getObject, type KindName } from "../kinds.js";

export interface ExposeOptions {
  port: string;
  targetPort?: string;
  type?: string;
  name?: string;
  protocol?: string;
  sessionAffinity?: string;
}

export async function expose(client: ApiClient, kind: KindName, name: string, namespace: string, o: ExposeOptions): Promise<Service> {
  if (kind !== "Deployment") throw new Error(`expose: only deployments can be exposed (got ${kind.toLowerCase()})`);
  if (!/^\d+$/.test(o.port)) throw new Error(`--port: "${o.port}" must be a port number between 1 and 65535`);
  const deployment = (await getObject(client, kind, namespace, name)) as Deployment;
  const selector = deployment.spec?.selector?.matchLabels ?? {};
  const service = Service.fromPartial({
    metadata: { name: o.name ?? name, namespace, labels: deployment.metadata?.labels ?? {} },
    spec: {
      selector,
      type: o.type ?? "",
      sessionAffinity: o.sessionAffinity ?? "",
      ports: [{ port: Number(o.port), targetPort: o.targetPort ?? "", protocol: o.protocol ?? "" }],
    },
  });
  return client.call<Service>((s, md, opts, cb) => s.services.createService(service, md, opts, cb));
}
