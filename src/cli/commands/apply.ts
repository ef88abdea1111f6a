// `flotilla apply -f FILE|DIR`: every object is checked locally first, so one bad object means nothing is sent.
import type { ApiClient } from "../../api/client.js";
import { type FieldError, formatFieldErrors, validateDeployment, validateIngress, validateNode, validatePod, validateService } from "../../api/validation.js";
import { readManifests, type Manifest } from "../manifests.js";
import { applyObject, getObject, type AnyObject } from "../kinds.js";
import { isCode } from "../../api/client.js";
import { status } from "@grpc/grpc-js";

function localErrors(m: Manifest): FieldError[] {
  switch (m.kind) {
    case "Pod":
      return validatePod(m.object);
    case "Deployment":
      return validateDeployment(m.object);
    case "Node":
      return validateNode(m.object);
    case "Service":
      return validateService(m.object);
    case "Ingress":
      return validateIngress(m.object);
  }
}

export function loadValidManifests(path: string): Manifest[] {
  const manifests = readManifests(path);
  if (manifests.length === 0) throw new Error(`${path}: no objects found`);
  for (const m of manifests) {
    const errors = localErrors(m);
    if (errors.length) {
      throw new Error(`${m.source}: ${m.kind} "${m.object.metadata?.name ?? ""}" is invalid: ${formatFieldErrors(errors)} (nothing was applied)`);
    }
  }
  return manifests;
}

export async function apply(client: ApiClient, path: string, namespace: string): Promise<string[]> {
  const lines: string[] = [];
  for (const m of loadValidManifests(path)) {
    const meta = m.object.metadata!;
    if (m.kind !== "Node") meta.namespace ||= namespace;
    const before = await getObject(client, m.kind, meta.namespace, meta.name).catch((e: unknown) => {
      if (isCode(e, status.NOT_FOUND)) return undefined;
      throw e;
    });
    const after: AnyObject = await applyObject(client, m.kind, m.object);
    const verb = !before ? "created" : before.metadata?.resourceVersion === after.metadata?.resourceVersion ? "unchanged" : "configured";
    lines.push(`${m.kind.toLowerCase()}/${meta.name} ${verb}`);
  }
  return lines;
}
