// Validation of objects as they reach the API. Every rule names the field it checks, in the manifest's own
// (camelCase, JSON-path) spelling, so a user can find the line to fix.
import type { Deployment } from "../gen/flotilla/v1/deployment.js";
import type { ObjectMeta } from "../gen/flotilla/v1/meta.js";
import type { Node } from "../gen/flotilla/v1/node.js";
import type { Container, Pod, PodSpec, Probe } from "../gen/flotilla/v1/pod.js";
import type { Endpoints, Service } from "../gen/flotilla/v1/service.js";
import type { Ingress, IngressBackend } from "../gen/flotilla/v1/ingress.js";
import { isValidLabelKey, isValidLabelValue, LABEL_KEY_RULE, LABEL_VALUE_RULE } from "./labels.js";
import { isValidQuantity, QUANTITY_RULE, parseBytes, parseCpuMillis } from "./quantity.js";

export interface FieldError {
  field: string;
  rule: string;
  value?: unknown;
}

export function formatFieldErrors(errors: FieldError[]): string {
  return errors
    .map((e) => `${e.field}: ${e.value === undefined ? "" : `${JSON.stringify(e.value)} `}${e.rule}`)
    .join("; ");
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
export const DNS1123_LABEL_RULE =
  "must be a DNS-1123 label: at most 63 lowercase alphanumerics or '-', starting and ending with an alphanumeric";
const DNS1123_SUBDOMAIN_RULE =
  "must be a DNS-1123 subdomain: at most 253 lowercase alphanumerics, '-' or '.', starting and ending with an alphanumeric";

export const RESTART_POLICIES = ["Always", "OnFailure", "Never"] as const;
const PULL_POLICIES = ["IfNotPresent", "Never", "Always"];
const PROTOCOLS = ["TCP", "UDP"];
const KNOWN_RESOURCES = ["cpu", "memory"];

export function isDns1123Label(name: string): boolean {
  return name.length <= 63 && DNS1123_LABEL.test(name);
}

/** Checks metadata. Names of nodes are hostnames, which may be DNS subdomains. */
export function validateMeta(meta: ObjectMeta | undefined, opts: { namespaced: boolean; nameIsSubdomain?: boolean }) {
  const errors: FieldError[] = [];
  if (!meta) return [{ field: "metadata", rule: "is required" }];
  if (!meta.name && !meta.generateName) errors.push({ field: "metadata.name", rule: "is required" });
  if (meta.name) {
    const ok = opts.nameIsSubdomain
      ? meta.name.length <= 253 && DNS1123_SUBDOMAIN.test(meta.name)
      : isDns1123Label(meta.name);
    if (!ok) {
      errors.push({ field: "metadata.name", value: meta.name, rule: opts.nameIsSubdomain ? DNS1123_SUBDOMAIN_RULE : DNS1123_LABEL_RULE });
    }
  }
  if (meta.generateName && !isDns1123Label(`${meta.generateName}x`) ) {
    errors.push({ field: "metadata.generateName", value: meta.generateName, rule: DNS1123_LABEL_RULE });
  }
  if (opts.namespaced && meta.namespace && !isDns1123Label(meta.namespace)) {
    errors.push({ field: "metadata.namespace", value: meta.namespace, rule: DNS1123_LABEL_RULE });
  }
  errors.push(...validateLabels(meta.labels, "metadata.labels"));
  for (const key of Object.keys(meta.annotations ?? {})) {
    if (!isValidLabelKey(key)) errors.push({ field: `metadata.annotations[${key}]`, rule: `key must be ${LABEL_KEY_RULE}` });
  }
  return errors;
}

export function validateLabels(labels: Record<string, string> | undefined, field: string): FieldError[] {
  const errors: FieldError[] = [];
  for (const [key, value] of Object.entries(labels ?? {})) {
    if (!isValidLabelKey(key)) errors.push({ field: `${field}[${key}]`, rule: `key must be ${LABEL_KEY_RULE}` });
    if (!isValidLabelValue(value)) errors.push({ field: `${field}[${key}]`, value, rule: `value must be ${LABEL_VALUE_RULE}` });
  }
  return errors;
}

export function validatePod(pod: Pod): FieldError[] {
  return [...validateMeta(pod.metadata, { namespaced: true }), ...validatePodSpec(pod.spec, "spec")];
}

export function validatePodSpec(spec: PodSpec | undefined, field: string): FieldError[] {
  if (!spec) return [{ field, rule: "is required" }];
  const errors: FieldError[] = [];
  if (spec.containers.length === 0) errors.push({ field: `${field}.containers`, rule: "must list at least one container" });
  const names = new Set<string>();
  const hostPorts = new Set<string>();
  spec.containers.forEach((c, i) => {
    const at = `${field}.containers[${i}]`;
    if (names.has(c.name)) errors.push({ field: `${at}.name`, value: c.name, rule: "must be unique within the pod" });
    names.add(c.name);
    errors.push(...validateContainer(c, at, hostPorts));
  });
  if (spec.restartPolicy && !(RESTART_POLICIES as readonly string[]).includes(spec.restartPolicy)) {
    errors.push({ field: `${field}.restartPolicy`, value: spec.restartPolicy, rule: `must be one of ${RESTART_POLICIES.join(", ")}` });
  }
  if (spec.nodeName && !DNS1123_SUBDOMAIN.test(spec.nodeName)) {
    errors.push({ field: `${field}.nodeName`, value: spec.nodeName, rule: DNS1123_SUBDOMAIN_RULE });
  }
  errors.push(...validateLabels(spec.nodeSelector, `${field}.nodeSelector`));
  const grace = spec.terminationGracePeriodSeconds;
  if (grace !== undefined && (grace < 0n || grace > 3600n)) {
    errors.push({ field: `${field}.terminationGracePeriodSeconds`, value: String(grace), rule: "must be between 0 and 3600" });
  }
  return errors;
}

function validateContainer(c: Container, at: string, hostPorts: Set<string>): FieldError[] {
  const errors: FieldError[] = [];
  if (!c.name) errors.push({ field: `${at}.name`, rule: "is required" });
  else if (!isDns1123Label(c.name)) errors.push({ field: `${at}.name`, value: c.name, rule: DNS1123_LABEL_RULE });
  if (!c.image && c.command.length === 0) {
    errors.push({ field: `${at}.image`, rule: "is required unless command is given (the process driver runs command)" });
  }
  if (c.imagePullPolicy && !PULL_POLICIES.includes(c.imagePullPolicy)) {
    errors.push({ field: `${at}.imagePullPolicy`, value: c.imagePullPolicy, rule: `must be one of ${PULL_POLICIES.join(", ")}` });
  }
  c.env.forEach((e, j) => {
    if (!ENV_NAME.test(e.name)) {
      errors.push({ field: `${at}.env[${j}].name`, value: e.name, rule: "must consist of letters, digits, '_', '-' or '.', not starting with a digit" });
    }
  });
  c.ports.forEach((p, j) => errors.push(...validatePort(p, `${at}.ports[${j}]`, hostPorts)));
  errors.push(...validateResources(c, `${at}.resources`));
  if (c.readinessProbe) {
    errors.push(...validateProbe(c.readinessProbe, `${at}.readinessProbe`));
    const named = (ref: string | undefined) => ref && !/^\d+$/.test(ref) && !c.ports.some((p) => p.name === ref);
    const ref = c.readinessProbe.httpGet?.port ?? c.readinessProbe.tcpSocket?.port;
    if (named(ref)) errors.push({ field: `${at}.readinessProbe`, value: ref, rule: "names a port that this container does not declare" });
  }
  return errors;
}

function validatePort(p: Container["ports"][number], at: string, hostPorts: Set<string>): FieldError[] {
  const errors: FieldError[] = [];
  if (!Number.isInteger(p.containerPort) || p.containerPort < 1 || p.containerPort > 65535) {
    errors.push({ field: `${at}.containerPort`, value: p.containerPort, rule: "must be between 1 and 65535" });
  }
  if (p.hostPort !== 0 && (!Number.isInteger(p.hostPort) || p.hostPort < 1 || p.hostPort > 65535)) {
    errors.push({ field: `${at}.hostPort`, value: p.hostPort, rule: "must be between 1 and 65535, or 0 for any free port" });
  }
  if (p.protocol && !PROTOCOLS.includes(p.protocol)) {
    errors.push({ field: `${at}.protocol`, value: p.protocol, rule: "must be TCP or UDP" });
  }
  if (p.hostIp && !IPV4.test(p.hostIp)) errors.push({ field: `${at}.hostIP`, value: p.hostIp, rule: "must be an IPv4 address" });
  if (p.name && (p.name.length > 15 || !DNS1123_LABEL.test(p.name))) {
    errors.push({ field: `${at}.name`, value: p.name, rule: "must be at most 15 lowercase alphanumerics or '-'" });
  }
  if (p.hostPort) {
    const key = `${p.protocol || "TCP"}/${p.hostPort}`;
    if (hostPorts.has(key)) errors.push({ field: `${at}.hostPort`, value: p.hostPort, rule: "is already used by another port of this pod" });
    hostPorts.add(key);
  }
  return errors;
}

function validateResources(c: Container, at: string): FieldError[] {
  const errors: FieldError[] = [];
  const requests = c.resources?.requests ?? {};
  const limits = c.resources?.limits ?? {};
  for (const [group, list] of [["requests", requests], ["limits", limits]] as const) {
    for (const [name, value] of Object.entries(list)) {
      const field = `${at}.${group}.${name}`;
      if (!KNOWN_RESOURCES.includes(name)) errors.push({ field, rule: `unknown resource; supported: ${KNOWN_RESOURCES.join(", ")}` });
      else if (!isValidQuantity(value)) errors.push({ field, value, rule: `must be ${QUANTITY_RULE}` });
    }
  }
  for (const name of KNOWN_RESOURCES) {
    const request = requests[name];
    const limit = limits[name];
    if (!request || !limit || !isValidQuantity(request) || !isValidQuantity(limit)) continue;
    const parse = name === "cpu" ? parseCpuMillis : parseBytes;
    if (parse(request) > parse(limit)) {
      errors.push({ field: `${at}.requests.${name}`, value: request, rule: `must be less than or equal to the limit (${limit})` });
    }
  }
  return errors;
}

export function validateDeployment(d: Deployment): FieldError[] {
  const errors = validateMeta(d.metadata, { namespaced: true });
  const spec = d.spec;
  if (!spec) return [...errors, { field: "spec", rule: "is required" }];
  if (spec.replicas !== undefined && (!Number.isInteger(spec.replicas) || spec.replicas < 0)) {
    errors.push({ field: "spec.replicas", value: spec.replicas, rule: "must be an integer >= 0" });
  }
  const matchLabels = spec.selector?.matchLabels ?? {};
  if (Object.keys(matchLabels).length === 0) {
    errors.push({ field: "spec.selector.matchLabels", rule: "must select at least one label" });
  }
  errors.push(...validateLabels(matchLabels, "spec.selector.matchLabels"));
  if (!spec.template) return [...errors, { field: "spec.template", rule: "is required" }];
  const templateLabels = spec.template.metadata?.labels ?? {};
  errors.push(...validateLabels(templateLabels, "spec.template.metadata.labels"));
  for (const [k, v] of Object.entries(matchLabels)) {
    if (templateLabels[k] !== v) {
      errors.push({ field: "spec.template.metadata.labels", rule: `must include the selector's ${k}=${v}, or the Deployment could never find its pods` });
    }
  }
  errors.push(...validatePodSpec(spec.template.spec, "spec.template.spec"));
  if (spec.template.spec?.nodeName) {
    errors.push({ field: "spec.template.spec.nodeName", rule: "must be empty: the scheduler places a Deployment's pods" });
  }
  return errors;
}

export function validateNode(n: Node): FieldError[] {
  const errors = validateMeta(n.metadata, { namespaced: false, nameIsSubdomain: true });
  for (const field of ["capacity", "allocatable"] as const) {
    for (const [name, value] of Object.entries(n.status?.[field] ?? {})) {
      if (!isValidQuantity(value)) errors.push({ field: `status.${field}.${name}`, value, rule: `must be ${QUANTITY_RULE}` });
    }
  }
  return errors;
}

export const SERVICE_TYPES = ["ClusterIP", "NodePort"] as const;
export const SESSION_AFFINITIES = ["None", "ClientIP"] as const;
export const NODE_PORT_RANGE = { min: 30000, max: 32767 } as const;
const PORT_NAME_RULE = "must be at most 15 lowercase alphanumerics or '-'";

function isPortNumber(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** A port given by number ("8080") or by a container port's name ("http"). */
function validatePortRef(value: string, field: string): FieldError[] {
  if (/^\d+$/.test(value)) return isPortNumber(Number(value)) ? [] : [{ field, value, rule: "must be between 1 and 65535, or a port name" }];
  return value.length <= 15 && DNS1123_LABEL.test(value) ? [] : [{ field, value, rule: `must be a port number or a name that ${PORT_NAME_RULE}` }];
}

export function validateService(s: Service): FieldError[] {
  const errors = validateMeta(s.metadata, { namespaced: true });
  const spec = s.spec;
  if (!spec) return [...errors, { field: "spec", rule: "is required" }];
  errors.push(...validateLabels(spec.selector, "spec.selector"));
  if (spec.type && !(SERVICE_TYPES as readonly string[]).includes(spec.type)) {
    errors.push({ field: "spec.type", value: spec.type, rule: `must be one of ${SERVICE_TYPES.join(", ")}` });
  }
  if (spec.sessionAffinity && !(SESSION_AFFINITIES as readonly string[]).includes(spec.sessionAffinity)) {
    errors.push({ field: "spec.sessionAffinity", value: spec.sessionAffinity, rule: `must be one of ${SESSION_AFFINITIES.join(", ")}` });
  }
  if (spec.clusterIp && !IPV4.test(spec.clusterIp)) errors.push({ field: "spec.clusterIp", value: spec.clusterIp, rule: "must be an IPv4 address" });
  if (spec.ports.length === 0) errors.push({ field: "spec.ports", rule: "must list at least one port" });
  const names = new Set<string>();
  const seen = new Set<string>();
  const nodePorts = new Set<number>();
  spec.ports.forEach((p, i) => {
    const at = `spec.ports[${i}]`;
    if (!isPortNumber(p.port)) errors.push({ field: `${at}.port`, value: p.port, rule: "must be between 1 and 65535" });
    if (p.protocol && !PROTOCOLS.includes(p.protocol)) errors.push({ field: `${at}.protocol`, value: p.protocol, rule: "must be TCP or UDP" });
    if (p.name && (p.name.length > 15 || !DNS1123_LABEL.test(p.name))) errors.push({ field: `${at}.name`, value: p.name, rule: PORT_NAME_RULE });
    if (spec.ports.length > 1 && !p.name) errors.push({ field: `${at}.name`, rule: "is required when a service has more than one port" });
    if (p.name && names.has(p.name)) errors.push({ field: `${at}.name`, value: p.name, rule: "must be unique within the service" });
    names.add(p.name);
    const key = `${p.protocol || "TCP"}/${p.port}`;
    if (seen.has(key)) errors.push({ field: `${at}.port`, value: p.port, rule: "is already used by another port of this service" });
    seen.add(key);
    if (p.targetPort) errors.push(...validatePortRef(p.targetPort, `${at}.targetPort`));
    if (p.nodePort) {
      if ((spec.type || "ClusterIP") !== "NodePort") {
        errors.push({ field: `${at}.nodePort`, value: p.nodePort, rule: "may only be set when spec.type is NodePort" });
      } else if (!Number.isInteger(p.nodePort) || p.nodePort < NODE_PORT_RANGE.min || p.nodePort > NODE_PORT_RANGE.max) {
        errors.push({ field: `${at}.nodePort`, value: p.nodePort, rule: `must be between ${NODE_PORT_RANGE.min} and ${NODE_PORT_RANGE.max}` });
      } else if (nodePorts.has(p.nodePort)) {
        errors.push({ field: `${at}.nodePort`, value: p.nodePort, rule: "is already used by another port of this service" });
      }
      nodePorts.add(p.nodePort);
    }
  });
  return errors;
}

export function validateEndpoints(e: Endpoints): FieldError[] {
  return validateMeta(e.metadata, { namespaced: true });
}

export function validateIngress(ing: Ingress): FieldError[] {
  const errors = validateMeta(ing.metadata, { namespaced: true });
  const spec = ing.spec;
  if (!spec) return [...errors, { field: "spec", rule: "is required" }];
  if (spec.rules.length === 0 && !spec.defaultBackend) errors.push({ field: "spec.rules", rule: "must list at least one rule, or give spec.defaultBackend" });
  const backend = (b: IngressBackend | undefined, at: string): FieldError[] => {
    if (!b) return [{ field: at, rule: "is required" }];
    const out: FieldError[] = [];
    if (!b.service || !isDns1123Label(b.service)) out.push({ field: `${at}.service`, value: b.service, rule: DNS1123_LABEL_RULE });
    if (!b.port) out.push({ field: `${at}.port`, rule: "is required (a service port number or name)" });
    else out.push(...validatePortRef(b.port, `${at}.port`));
    return out;
  };
  if (spec.defaultBackend) errors.push(...backend(spec.defaultBackend, "spec.defaultBackend"));
  spec.rules.forEach((r, i) => {
    const at = `spec.rules[${i}]`;
    if (r.host && (!DNS1123_SUBDOMAIN.test(r.host) || r.host.length > 253)) errors.push({ field: `${at}.host`, value: r.host, rule: DNS1123_SUBDOMAIN_RULE });
    if (r.paths.length === 0) errors.push({ field: `${at}.paths`, rule: "must list at least one path" });
    r.paths.forEach((p, j) => {
      if (!p.pathPrefix.startsWith("/")) errors.push({ field: `${at}.paths[${j}].pathPrefix`, value: p.pathPrefix, rule: "must start with '/'" });
      errors.push(...backend(p.backend, `${at}.paths[${j}].backend`));
    });
  });
  return errors;
}

export function validateProbe(p: Probe, at: string): FieldError[] {
  const errors: FieldError[] = [];
  const actions = [p.httpGet, p.tcpSocket, p.exec].filter((a) => a !== undefined).length;
  if (actions !== 1) errors.push({ field: at, rule: "must give exactly one of httpGet, tcpSocket or exec" });
  if (p.httpGet) {
    errors.push(...validatePortRef(p.httpGet.port, `${at}.httpGet.port`));
    if (p.httpGet.path && !p.httpGet.path.startsWith("/")) errors.push({ field: `${at}.httpGet.path`, value: p.httpGet.path, rule: "must start with '/'" });
  }
  if (p.tcpSocket) errors.push(...validatePortRef(p.tcpSocket.port, `${at}.tcpSocket.port`));
  if (p.exec && p.exec.command.length === 0) errors.push({ field: `${at}.exec.command`, rule: "must not be empty" });
  for (const [name, min, max] of [["initialDelaySeconds", 0, 3600], ["periodSeconds", 0, 3600], ["timeoutSeconds", 0, 3600], ["successThreshold", 0, 100], ["failureThreshold", 0, 100]] as const) {
    const v = p[name];
    if (!Number.isInteger(v) || v < min || v > max) errors.push({ field: `${at}.${name}`, value: v, rule: `must be between ${min} and ${max} (0: the default)` });
  }
  return errors;
}
