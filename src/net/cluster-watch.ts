// Follows Services, Endpoints and Ingresses through the masters' API (list, then watch; on any failure, list again
// after a pause, so the node keeps its last view meanwhile) and hands the node's network pieces a fresh view on
// every change, coalesced so that a burst of events costs one update.
import { status } from "@grpc/grpc-js";
import { type ApiClient, describeError, isCode } from "../api/client.js";
import type { Ingress, IngressList } from "../gen/flotilla/v1/ingress.js";
import type { Endpoints, EndpointsList, Service, ServiceList } from "../gen/flotilla/v1/service.js";
import type { ClusterNetworkView } from "./types.js";
import { buildNetworkView, objectKey } from "./view.js";

interface Log {
  warn(obj: object, msg: string): void;
}

type Listed<T> = { items: T[]; resourceVersion: string };
type Event<T> = { type: string; object?: T | undefined };
type Meta = { metadata?: { namespace: string; name: string } | undefined };

interface Source<T extends Meta> {
  what: string;
  list(client: ApiClient): Promise<Listed<T>>;
  watch(client: ApiClient, resourceVersion: string): ReturnType<ApiClient["stream"]>;
}

const req = { namespace: "", labelSelector: "", fieldSelector: "" };

const SERVICES: Source<Service> = {
  what: "services",
  list: (c) => c.call<ServiceList>((s, md, o, cb) => s.services.listServices(req, md, o, cb)),
  watch: (c, resourceVersion) => c.stream((s, md) => s.services.watchServices({ ...req, resourceVersion }, md)),
};
const ENDPOINTS: Source<Endpoints> = {
  what: "endpoints",
  list: (c) => c.call<EndpointsList>((s, md, o, cb) => s.endpoints.listEndpoints(req, md, o, cb)),
  watch: (c, resourceVersion) => c.stream((s, md) => s.endpoints.watchEndpoints({ ...req, resourceVersion }, md)),
};
const INGRESSES: Source<Ingress> = {
  what: "ingresses",
  list: (c) => c.call<IngressList>((s, md, o, cb) => s.ingresses.listIngresses(req, md, o, cb)),
  watch: (c, resourceVersion) => c.stream((s, md) => s.ingresses.watchIngresses({ ...req, resourceVersion }, md)),
};

export class ClusterWatch {
  private readonly services = new Map<string, Service>();
  private readonly endpoints = new Map<string, Endpoints>();
  private readonly ingresses = new Map<string, Ingress>();
  private readonly streams = new Set<{ cancel(): void }>();
  private stopped = false;
  private pending = false;
  private view: ClusterNetworkView = { services: [], ingresses: [] };

  constructor(
    private readonly client: ApiClient,
    private readonly onChange: (view: ClusterNetworkView) => void,
    private readonly log?: Log,
  ) {}

  /** The latest view (DNS and the ingress read it per request). */
  current(): ClusterNetworkView {
    return this.view;
  }

  start(): void {
    void this.follow(SERVICES, this.services);
    void this.follow(ENDPOINTS, this.endpoints);
    void this.follow(INGRESSES, this.ingresses);
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.streams) s.cancel();
  }

  private changed(): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      if (this.stopped) return;
      this.view = buildNetworkView(this.services.values(), this.endpoints.values(), this.ingresses.values());
      this.onChange(this.view);
    });
  }

  private async follow<T extends Meta>(source: Source<T>, into: Map<string, T>): Promise<void> {
    let delayMs = 250;
    while (!this.stopped) {
      try {
        const list = await source.list(this.client);
        into.clear();
        for (const item of list.items) into.set(objectKey(item), item);
        this.changed();
        delayMs = 250;
        await this.watch(source, into, list.resourceVersion);
      } catch (e) {
        if (this.stopped) return;
        if (isCode(e, status.UNAVAILABLE)) this.client.failover();
        this.log?.warn({ err: describeError(e) }, `lost the ${source.what} watch; the node keeps its last view, listing again`);
      }
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(delayMs * 2, 5000);
    }
  }

  private watch<T extends Meta>(source: Source<T>, into: Map<string, T>, resourceVersion: string): Promise<void> {
    // A watch only ends by failing (or by stop): then follow() lists again.
    return new Promise((_resolve, reject) => {
      const stream = source.watch(this.client, resourceVersion);
      this.streams.add(stream);
      const done = (e: Error) => {
        this.streams.delete(stream);
        reject(e);
      };
      stream.on("data", (event: Event<T>) => {
        if (!event.object) return;
        if (event.type === "DELETED") into.delete(objectKey(event.object));
        else into.set(objectKey(event.object), event.object);
        this.changed();
      });
      stream.on("error", done);
      stream.on("end", () => done(new Error("watch ended")));
    });
  }
}
