// Typed, validated CRUD over the Store for one kind. Each object is one key, /registry/<plural>/<ns>/<name>; its
// resourceVersion is the key's mod revision, and every write is a compare-and-swap on it (optimistic concurrency).
import { randomBytes, randomUUID } from "node:crypto";
import type { KeyValue, Store, Watcher } from "../store/index.js";
import { matchesSelector, parseSelector, type Selector } from "../api/labels.js";
import { alreadyExists, conflict, invalid, invalidField, notFound } from "./errors.js";
import { API_VERSION, type ApiObject, type KindInfo } from "./kinds.js";
import { isDeepStrictEqual } from "node:util";

/** etcd's default request limit; larger objects are refused before they reach the store. */
export const MAX_OBJECT_BYTES = 1_572_864;
export const DEFAULT_NAMESPACE = "default";

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

export interface ObjectFilter<T> {
  (obj: T): boolean;
}

const GENERATED_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";
const CAS_RETRIES = 20;

export class Registry<T extends ApiObject> {
  constructor(
    private readonly store: Store,
    readonly info: KindInfo<T>,
    private readonly now: () => Date = () => new Date(),
  ) {}

  namespaceOf(namespace: string | undefined): string {
    return this.info.namespaced ? namespace || DEFAULT_NAMESPACE : "";
  }

  prefix(namespace?: string): string {
    const base = `/registry/${this.info.plural}/`;
    if (!this.info.namespaced) return base;
    return namespace ? `${base}${namespace}/` : base;
  }

  key(namespace: string, name: string): string {
    return this.info.namespaced ? `${this.prefix(namespace)}${name}` : `${this.prefix()}${name}`;
  }

  currentRevision(): Promise<number> {
    return this.store.revision();
  }

  async maybeGet(namespace: string, name: string): Promise<T | undefined> {
    const kv = await this.store.get(this.key(this.namespaceOf(namespace), name));
    return kv ? this.decode(kv) : undefined;
  }

  async get(namespace: string, name: string): Promise<T> {
    const ns = this.namespaceOf(namespace);
    const found = await this.maybeGet(ns, name);
    if (!found) throw notFound(this.info.kind, ns, name);
    return found;
  }

  async list(namespace: string, options: ListOptions = {}): Promise<{ items: T[]; resourceVersion: string }> {
    const filter = this.filterFor(options);
    const { kvs, revision } = await this.store.range(this.prefix(this.info.namespaced ? namespace : undefined));
    const items = kvs.map((kv) => this.decode(kv)).filter(filter);
    return { items, resourceVersion: String(revision) };
  }

  async create(input: T): Promise<T> {
    const obj = this.prepare(input);
    const meta = obj.metadata!;
    meta.uid = randomUUID();
    meta.creationTimestamp = this.now().toISOString();
    meta.generation = 1n;
    meta.resourceVersion = "";
    for (let attempt = 0; attempt < 5; attempt++) {
      if (meta.generateName && !input.metadata?.name) meta.name = meta.generateName + randomSuffix();
      const result = await this.store.compareAndSwap(this.key(meta.namespace, meta.name), 0, this.encode(obj));
      if (result.succeeded) return this.decode(result.current!);
      if (!meta.generateName || input.metadata?.name) break;
    }
    throw alreadyExists(this.info.kind, meta.namespace, meta.name);
  }

  /**
   * Creates the object, or replaces its spec, labels and annotations. Status, uid and creation time are kept.
   * With metadata.resourceVersion set the replace is conditional on it; without, the last writer wins.
   */
  async apply(input: T): Promise<{ object: T; created: boolean }> {
    const obj = this.prepare(input);
    const meta = obj.metadata!;
    for (let attempt = 0; attempt < CAS_RETRIES; attempt++) {
      const current = await this.maybeGet(meta.namespace, meta.name);
      if (!current) {
        if (meta.resourceVersion) throw notFound(this.info.kind, meta.namespace, meta.name);
        try {
          return { object: await this.create(obj), created: true };
        } catch (e) {
          if (attempt < CAS_RETRIES - 1 && e instanceof Error && /already exists/.test(e.message)) continue;
          throw e;
        }
      }
      const merged = this.mergeSpec(current, obj);
      if (this.unchanged(current, merged)) return { object: current, created: false };
      const expected = meta.resourceVersion || current.metadata!.resourceVersion;
      const written = await this.tryWrite(merged, expected);
      if (written) return { object: written, created: false };
      if (meta.resourceVersion) throw await this.conflictFor(meta.namespace, meta.name, meta.resourceVersion);
    }
    throw await this.conflictFor(meta.namespace, meta.name, "(retries exhausted)");
  }

  /** Replaces status only. metadata.resourceVersion, when set, is a precondition. */
  async updateStatus(input: T): Promise<T> {
    const ns = this.namespaceOf(input.metadata?.namespace);
    const name = input.metadata?.name ?? "";
    if (!name) throw invalidField("metadata.name", "is required");
    const expected = input.metadata?.resourceVersion ?? "";
    return this.mutate(ns, name, (current) => {
      if (expected && current.metadata!.resourceVersion !== expected) {
        throw conflict(this.info.kind, name, expected, Number(current.metadata!.resourceVersion));
      }
      this.info.copyStatus(input, current);
      return current;
    });
  }

  /**
   * Read-modify-write with compare-and-swap, retried on conflict. `change` edits the object in place (or returns
   * a replacement); returning undefined means "no change needed".
   */
  async mutate(namespace: string, name: string, change: (current: T) => T | undefined): Promise<T> {
    const ns = this.namespaceOf(namespace);
    for (let attempt = 0; attempt < CAS_RETRIES; attempt++) {
      const current = await this.get(ns, name);
      const before = this.info.specOf(structuredClone(current));
      const next = change(structuredClone(current));
      if (!next) return current;
      if (!isDeepStrictEqual(this.info.specOf(next), before)) next.metadata!.generation = current.metadata!.generation + 1n;
      this.check(next);
      const written = await this.tryWrite(next, current.metadata!.resourceVersion);
      if (written) return written;
    }
    throw await this.conflictFor(ns, name, "(retries exhausted)");
  }

  async delete(namespace: string, name: string, resourceVersion = ""): Promise<string> {
    const ns = this.namespaceOf(namespace);
    const key = this.key(ns, name);
    for (let attempt = 0; attempt < CAS_RETRIES; attempt++) {
      const current = await this.store.get(key);
      if (!current) throw notFound(this.info.kind, ns, name);
      if (resourceVersion && String(current.modRevision) !== resourceVersion) {
        throw conflict(this.info.kind, name, resourceVersion, current.modRevision);
      }
      const result = await this.store.compareAndSwap(key, current.modRevision, null);
      if (result.succeeded) return String(result.revision);
    }
    throw await this.conflictFor(ns, name, resourceVersion || "(retries exhausted)");
  }

  /**
   * Streams changes after fromRevision (0: from now). Objects that stop matching the filter arrive as DELETED,
   * and ones that start matching as ADDED, as a Kubernetes watch with a selector does.
   */
  watch(
    namespace: string,
    fromRevision: number,
    options: ListOptions,
    onEvent: (type: WatchEventType, obj: T) => void,
    onError: (e: Error) => void,
  ): Watcher {
    const filter = this.filterFor(options);
    const prefix = this.prefix(this.info.namespaced ? namespace : undefined);
    return this.store.watch(prefix, fromRevision, {
      onEvents: (events) => {
        for (const event of events) {
          const prev = event.prev ? this.decode(event.prev) : undefined;
          const wasIn = prev ? filter(prev) : false;
          if (event.type === "delete") {
            if (prev && wasIn) onEvent("DELETED", this.withVersion(prev, event.kv.modRevision));
            continue;
          }
          const obj = this.decode(event.kv);
          const isIn = filter(obj);
          if (isIn) onEvent(wasIn ? "MODIFIED" : "ADDED", obj);
          else if (wasIn) onEvent("DELETED", obj);
        }
      },
      onError,
    });
  }

  private filterFor(options: ListOptions): (obj: T) => boolean {
    let labels: Selector;
    try {
      labels = parseSelector(options.labelSelector ?? "");
    } catch (e) {
      throw invalidField("labelSelector", (e as Error).message);
    }
    const fields = parseFieldSelector(options.fieldSelector ?? "", (f) => this.info.selectableFields.includes(f));
    return (obj) =>
      matchesSelector(labels, obj.metadata?.labels) &&
      fields.every(({ field, op, value }) => (this.info.fieldValue(obj, field) === value) === (op === "="));
  }

  /** Copies, fills defaults and identity, validates. */
  private prepare(input: T): T {
    const obj = this.info.codec.fromPartial(input as object);
    obj.apiVersion = API_VERSION;
    obj.kind = this.info.kind;
    obj.metadata ??= this.info.codec.fromPartial({}).metadata ?? ({} as NonNullable<T["metadata"]>);
    const meta = obj.metadata!;
    meta.labels ??= {};
    meta.annotations ??= {};
    meta.ownerReferences ??= [];
    meta.namespace = this.namespaceOf(meta.namespace);
    this.info.applyDefaults(obj);
    const errors = this.info.validate(obj);
    if (errors.length > 0) throw invalid(this.info.kind, meta.name, errors);
    this.check(obj);
    return obj;
  }

  private check(obj: T): void {
    const size = this.info.codec.encode(obj).finish().length;
    if (size > MAX_OBJECT_BYTES) {
      throw invalidField("(object)", `is too large: ${size} bytes encoded, the limit is ${MAX_OBJECT_BYTES}`);
    }
  }

  private mergeSpec(current: T, desired: T): T {
    const merged = structuredClone(desired);
    const errors = this.info.validateUpdate?.(current, merged) ?? [];
    if (errors.length > 0) throw invalid(this.info.kind, current.metadata!.name, errors);
    const meta = merged.metadata!;
    const old = current.metadata!;
    meta.uid = old.uid;
    meta.creationTimestamp = old.creationTimestamp;
    meta.ownerReferences = meta.ownerReferences.length ? meta.ownerReferences : old.ownerReferences;
    const specChanged = !isDeepStrictEqual(this.info.specOf(desired), this.info.specOf(current));
    meta.generation = specChanged ? old.generation + 1n : old.generation;
    this.info.copyStatus(current, merged);
    return merged;
  }

  private unchanged(current: T, next: T): boolean {
    const [a, b] = [current.metadata!, next.metadata!];
    return (
      isDeepStrictEqual(this.info.specOf(current), this.info.specOf(next)) &&
      isDeepStrictEqual(a.labels, b.labels) &&
      isDeepStrictEqual(a.annotations, b.annotations) &&
      isDeepStrictEqual(a.ownerReferences, b.ownerReferences)
    );
  }

  private async tryWrite(obj: T, expectedVersion: string): Promise<T | undefined> {
    const meta = obj.metadata!;
    const stored = structuredClone(obj);
    stored.metadata!.resourceVersion = "";
    const result = await this.store.compareAndSwap(this.key(meta.namespace, meta.name), Number(expectedVersion), this.encode(stored));
    return result.succeeded ? this.decode(result.current!) : undefined;
  }

  private async conflictFor(namespace: string, name: string, expected: string) {
    const now = await this.store.get(this.key(namespace, name));
    return conflict(this.info.kind, name, expected, now?.modRevision ?? 0);
  }

  private encode(obj: T): Uint8Array {
    return this.info.codec.encode(obj).finish();
  }

  private decode(kv: KeyValue): T {
    return this.withVersion(this.info.codec.decode(kv.value), kv.modRevision);
  }

  private withVersion(obj: T, revision: number): T {
    obj.metadata ??= { resourceVersion: "" } as NonNullable<T["metadata"]>;
    obj.metadata!.resourceVersion = String(revision);
    return obj;
  }
}

function randomSuffix(): string {
  const bytes = randomBytes(5);
  return [...bytes].map((b) => GENERATED_SUFFIX_ALPHABET[b % GENERATED_SUFFIX_ALPHABET.length]).join("");
}

interface FieldRequirement {
  field: string;
  op: "=" | "!=";
  value: string;
}

function parseFieldSelector(text: string, known: (field: string) => boolean): FieldRequirement[] {
  return text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)
    .map((part) => {
      const match = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
      if (!match) throw invalidField("fieldSelector", `"${part}" must look like field=value or field!=value`);
      if (!known(match[1])) throw invalidField("fieldSelector", `field "${match[1]}" is not supported for this kind`);
      return { field: match[1], op: match[2] === "!=" ? "!=" : "=", value: match[3] };
    });
}
