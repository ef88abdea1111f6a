// Reading manifests: YAML or JSON files (or every such file in a directory), one or more objects each, in
// Kubernetes' shape. Fields are checked against the API's own .proto schema, so a misspelt field is an error
// that names it (as kubectl's strict field validation does) rather than something silently dropped.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, extname } from "node:path";
import protobuf from "protobufjs";
import { parseAllDocuments } from "yaml";
import { Deployment } from "../gen/flotilla/v1/deployment.js";
import { Node } from "../gen/flotilla/v1/node.js";
import { Pod } from "../gen/flotilla/v1/pod.js";
import { Ingress } from "../gen/flotilla/v1/ingress.js";
import { Service } from "../gen/flotilla/v1/service.js";
import { protoRoot } from "../api/proto-path.js";

export type Manifest =
  | { kind: "Pod"; object: Pod; source: string }
  | { kind: "Deployment"; object: Deployment; source: string }
  | { kind: "Node"; object: Node; source: string }
  | { kind: "Service"; object: Service; source: string }
  | { kind: "Ingress"; object: Ingress; source: string };

export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ManifestError";
  }
}

const KINDS = { Pod, Deployment, Node, Service, Ingress } as const;
const MANIFEST_EXTENSIONS = [".yaml", ".yml", ".json"];

export function manifestFiles(path: string): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new ManifestError(`${path}: no such file or directory`);
  }
  if (!stat.isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => MANIFEST_EXTENSIONS.includes(extname(f)))
    .sort()
    .map((f) => join(path, f));
}

export function readManifests(path: string): Manifest[] {
  return manifestFiles(path).flatMap((file) => parseManifests(readFileSync(file, "utf8"), file));
}

export function parseManifests(text: string, source: string): Manifest[] {
  const docs = parseAllDocuments(text);
  const out: Manifest[] = [];
  docs.forEach((doc, i) => {
    const where = docs.length > 1 ? `${source} (document ${i + 1})` : source;
    if (doc.errors.length) throw new ManifestError(`${where}: not valid YAML or JSON: ${doc.errors[0].message}`);
    const raw: unknown = doc.toJSON();
    if (raw === null || raw === undefined) return;
    out.push(toManifest(raw, where));
  });
  return out;
}

function toManifest(raw: unknown, where: string): Manifest {
  if (typeof raw !== "object" || Array.isArray(raw)) throw new ManifestError(`${where}: a manifest must be an object`);
  const obj = raw as Record<string, unknown>;
  const kind = obj.kind;
  if (typeof kind !== "string" || !(kind in KINDS)) {
    throw new ManifestError(`${where}: kind: ${JSON.stringify(kind)} is not supported; use one of ${Object.keys(KINDS).join(", ")}`);
  }
  const typed = kind as keyof typeof KINDS;
  const problems = checkFields(obj, schema().lookupType(`flotilla.v1.${typed}`), "");
  if (problems.length) throw new ManifestError(`${where}: ${typed} ${nameOf(obj)}: ${problems.join("; ")}`);
  switch (typed) {
    case "Pod":
      return { kind: typed, object: Pod.fromJSON(obj), source: where };
    case "Deployment":
      return { kind: typed, object: Deployment.fromJSON(obj), source: where };
    case "Node":
      return { kind: typed, object: Node.fromJSON(obj), source: where };
    case "Service":
      return { kind: typed, object: Service.fromJSON(obj), source: where };
    case "Ingress":
      return { kind: typed, object: Ingress.fromJSON(obj), source: where };
  }
}

function nameOf(obj: Record<string, unknown>): string {
  const meta = obj.metadata as Record<string, unknown> | undefined;
  return typeof meta?.name === "string" ? `"${meta.name}"` : "(unnamed)";
}

let cachedRoot: protobuf.Root | undefined;
function schema(): protobuf.Root {
  if (!cachedRoot) {
    const root = new protobuf.Root();
    const dir = protoRoot();
    root.resolvePath = (_origin, target) => join(dir, target);
    root.loadSync(["flotilla/v1/pod.proto", "flotilla/v1/deployment.proto", "flotilla/v1/node.proto", "flotilla/v1/service.proto", "flotilla/v1/ingress.proto"], { keepCase: false });
    root.resolveAll();
    cachedRoot = root;
  }
  return cachedRoot;
}

const SCALAR_KINDS: Record<string, string> = {
  string: "string", bool: "boolean", int32: "number", int64: "integer", uint32: "number", uint64: "integer", double: "number", float: "number", bytes: "string",
};

/** Unknown fields and wrongly typed values, each named by its path. */
function checkFields(value: Record<string, unknown>, type: protobuf.Type, path: string): string[] {
  const problems: string[] = [];
  const byJsonName = new Map(type.fieldsArray.map((f) => [f.name, f]));
  for (const [key, v] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key;
    const field = byJsonName.get(key);
    if (!field) {
      const hint = closest(key, [...byJsonName.keys()]);
      problems.push(`${at}: unknown field${hint ? ` (did you mean "${hint}"?)` : ""}`);
      continue;
    }
    if (v === null || v === undefined) continue;
    if (field.map) {
      if (typeof v !== "object" || Array.isArray(v)) problems.push(`${at}: must be a map`);
      else for (const [k, item] of Object.entries(v)) problems.push(...checkValue(field, item, `${at}[${k}]`));
    } else if (field.repeated) {
      if (!Array.isArray(v)) problems.push(`${at}: must be a list`);
      else v.forEach((item, i) => problems.push(...checkValue(field, item, `${at}[${i}]`)));
    } else problems.push(...checkValue(field, v, at));
  }
  return problems;
}

function checkValue(field: protobuf.Field, v: unknown, at: string): string[] {
  if (field.resolvedType instanceof protobuf.Type) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return [`${at}: must be an object`];
    return checkFields(v as Record<string, unknown>, field.resolvedType, at);
  }
  const expected = SCALAR_KINDS[field.type];
  if (expected === "integer") {
    return (typeof v === "number" && Number.isInteger(v)) || (typeof v === "string" && /^-?\d+$/.test(v)) ? [] : [`${at}: must be an integer`];
  }
  if (expected === "number" && field.type !== "double" && field.type !== "float") {
    return typeof v === "number" && Number.isInteger(v) ? [] : [`${at}: must be an integer, got ${JSON.stringify(v)}`];
  }
  if (expected && typeof v !== expected) {
    // Kubernetes manifests often write quantities and label values as bare numbers ("cpu: 1"); accept those.
    if (expected === "string" && typeof v === "number") return [];
    return [`${at}: must be a ${expected}, got ${JSON.stringify(v)}`];
  }
  return [];
}

function closest(word: string, candidates: string[]): string | undefined {
  const lower = word.toLowerCase();
  return candidates.find((c) => c.toLowerCase() === lower || c.toLowerCase().startsWith(lower) || lower.startsWith(c.toLowerCase()));
}
