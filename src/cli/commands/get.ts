// `flotilla get` and `flotilla describe`.
import type { ApiClient } from "../../api/client.js";
import type { Deployment } from "../../gen/flotilla/v1/deployment.js";
import type { Node } from "../../gen/flotilla/v1/node.js";
import type { Pod } from "../../gen/flotilla/v1/pod.js";
import type { Endpoints, Service } from "../../gen/flotilla/v1/service.js";
import type { Ingress } from "../../gen/flotilla/v1/ingress.js";
import { describeDeployment, describeNode, describePod, describeService } from "../describe.js";
import { deploymentTable, emptyMessage, endpointsTable, ingressTable, nodeTable, podTable, serviceTable, toJsonOutput, toYamlOutput } from "../format.js";
import { type AnyObject, getObject, type KindName, listObjects, namespaced } from "../kinds.js";

export interface GetOptions {
  output?: string;
  selector?: string;
  allNamespaces?: boolean;
}

const OUTPUTS = ["wide", "json", "yaml"];

export async function get(client: ApiClient, kind: KindName, name: string | undefined, namespace: string, opts: GetOptions): Promise<string> {
  if (opts.output && !OUTPUTS.includes(opts.output)) throw new Error(`--output: "${opts.output}" is not one of ${OUTPUTS.join(", ")}`);
  const ns = opts.allNamespaces ? "" : namespace;
  const objects = name ? [await getObject(client, kind, ns || namespace, name)] : await listObjects(client, kind, ns, opts.selector ?? "");
  if (opts.output === "json") return toJsonOutput(kind, objects, Boolean(name));
  if (opts.output === "yaml") return toYamlOutput(kind, objects, Boolean(name));
  if (objects.length === 0) return emptyMessage(`${kind.toLowerCase()}s`, namespaced(kind) && !opts.allNamespaces ? namespace : "");
  const wide = opts.output === "wide";
  const now = new Date();
  switch (kind) {
    case "Pod":
      return podTable(objects as Pod[], now, wide);
    case "Node":
      return nodeTable(objects as Node[], now, wide);
    case "Deployment":
      return deploymentTable(objects as Deployment[], now, wide);
    case "Service":
      return serviceTable(objects as Service[], now, wide);
    case "Endpoints":
      return endpointsTable(objects as Endpoints[], now);
    case "Ingress":
      return ingressTable(objects as Ingress[], now);
  }
}

export async function describe(client: ApiClient, kind: KindName, name: string, namespace: string): Promise<string> {
  const object: AnyObject = await getObject(client, kind, namespace, name);
  const now = new Date();
  switch (kind) {
    case "Pod":
      return describePod(object as Pod, now);
    case "Node": {
      const pods = (await listObjects(client, "Pod", "", "", `spec.nodeName=${name}`)) as Pod[];
      return describeNode(object as Node, pods, now);
    }
    case "Deployment": {
      const pods = (await listObjects(client, "Pod", namespace)) as Pod[];
      return describeDeployment(object as Deployment, pods, now);
    }
    case "Service": {
      const endpoints = (await getObject(client, "Endpoints", namespace, name).catch(() => undefined)) as Endpoints | undefined;
      return describeService(object as Service, endpoints);
    }
    case "Endpoints":
    case "Ingress":
      return `${JSON.stringify(object, null, 2)}\n`;
  }
}
