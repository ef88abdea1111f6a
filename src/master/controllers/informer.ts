// An informer keeps a read-only cache of one kind from list + watch, and tells handlers what changed. Writers
// that must see their own writes at once (the controllers, after create or delete) record them with observe()
// and forget(); revisions make the cache ignore any older event that arrives afterwards.
import type { Watcher } from "../../store/index.js";
import type { ApiObject } from "../kinds.js";
import type { Registry } from "../registry.js";
import type { Logger } from "../../common/logger.js";

export interface InformerHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

export function objectKey(obj: ApiObject): string {
  const meta = obj.metadata!;
  return meta.namespace ? `${meta.namespace}/${meta.name}` : meta.name;
}

const revisionOf = (obj: ApiObject) => Number(obj.metadata?.resourceVersion ?? 0);

export class Informer<T extends ApiObject> {
  private readonly cache = new Map<string, T>();
  /** Revision last seen per key, including deleted keys, so stale events are dropped. */
  private readonly seen = new Map<string, number>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private watcher?: Watcher;
  private stopped = false;
  private restartTimer?: NodeJS.Timeout;

  constructor(
    private readonly registry: Registry<T>,
    private readonly log: Logger,
  ) {}

  addHandlers(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  async start(): Promise<void> {
    const { items, resourceVersion } = await this.registry.list("");
    const listed = new Set<string>();
    for (const obj of items) {
      listed.add(objectKey(obj));
      this.observe(obj);
    }
    for (const [key, obj] of [...this.cache]) if (!listed.has(key)) this.forget(obj, Number(resourceVersion));
    if (this.stopped) return;
    this.watcher = this.registry.watch(
      "",
      Number(resourceVersion) + 1,
      {},
      (type, obj) => (type === "DELETED" ? this.forget(obj, revisionOf(obj)) : this.observe(obj)),
      (e) => this.restart(e),
    );
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.watcher?.cancel();
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  /** Records an object as written (or as delivered by the watch), unless a newer revision was already seen. */
  observe(obj: T): void {
    const key = objectKey(obj);
    const revision = revisionOf(obj);
    if ((this.seen.get(key) ?? 0) >= revision) return;
    this.seen.set(key, revision);
    const old = this.cache.get(key);
    this.cache.set(key, obj);
    for (const h of this.handlers) {
      if (old) h.onUpdate?.(old, obj);
      else h.onAdd?.(obj);
    }
  }

  /** Records a deletion at `revision`. */
  forget(obj: T, revision: number): void {
    const key = objectKey(obj);
    if ((this.seen.get(key) ?? 0) >= revision) return;
    this.seen.set(key, revision);
    const old = this.cache.get(key);
    if (!old) return;
    this.cache.delete(key);
    for (const h of this.handlers) h.onDelete?.(old);
  }

  private restart(error: Error): void {
    if (this.stopped) return;
    this.log.warn({ err: error, kind: this.registry.info.kind }, "watch ended; listing again");
    this.restartTimer = setTimeout(() => {
      this.start().catch((e: unknown) => this.restart(e as Error));
    }, 500);
  }
}
