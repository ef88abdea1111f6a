// The Flotilla API client used by the CLI and the agent: typed service clients over a list of masters, with a
// bearer token, deadlines, and fail-over to the next master when one is unreachable.
import {
  credentials as grpcCredentials,
  Metadata,
  status,
  type ClientReadableStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { ClusterServiceClient } from "../gen/flotilla/v1/cluster.js";
import { DeploymentServiceClient } from "../gen/flotilla/v1/deployment.js";
import { NodeServiceClient } from "../gen/flotilla/v1/node.js";
import { IngressServiceClient } from "../gen/flotilla/v1/ingress.js";
import { PodServiceClient } from "../gen/flotilla/v1/pod.js";
import { EndpointsServiceClient, ServiceServiceClient } from "../gen/flotilla/v1/service.js";
import { MAX_RECEIVE_BYTES } from "./serve.js";

export interface Services {
  address: string;
  pods: PodServiceClient;
  nodes: NodeServiceClient;
  deployments: DeploymentServiceClient;
  cluster: ClusterServiceClient;
  services: ServiceServiceClient;
  endpoints: EndpointsServiceClient;
  ingresses: IngressServiceClient;
}

export interface ClientOptions {
  servers: string[];
  token: string;
  /** Deadline for unary calls. */
  timeoutMs?: number;
}

type Callback<Res> = (error: ServiceError | null, response: Res) => void;

const CHANNEL_OPTIONS = {
  "grpc.max_receive_message_length": MAX_RECEIVE_BYTES,
  "grpc.max_send_message_length": MAX_RECEIVE_BYTES,
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 2000,
};

export class ApiClient {
  private readonly services: Services[];
  private current = 0;
  private token: string;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    if (options.servers.length === 0) throw new Error("no master addresses given");
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.services = options.servers.map((address) => connect(address));
  }

  /** Switch credentials (the agent does after joining). */
  setToken(token: string): void {
    this.token = token;
  }

  metadata(): Metadata {
    const md = new Metadata();
    if (this.token) md.set("authorization", `Bearer ${this.token}`);
    return md;
  }

  /** A unary call, tried against each master in turn while they are unreachable. */
  async call<Res>(invoke: (s: Services, md: Metadata, options: { deadline: Date }, cb: Callback<Res>) => void): Promise<Res> {
    let lastError: ServiceError | undefined;
    for (let attempt = 0; attempt < this.services.length; attempt++) {
      const services = this.services[this.current];
      try {
        return await new Promise<Res>((resolve, reject) => {
          invoke(services, this.metadata(), { deadline: new Date(Date.now() + this.timeoutMs) }, (e, r) => (e ? reject(e) : resolve(r)));
        });
      } catch (e) {
        lastError = e as ServiceError;
        if (lastError.code !== status.UNAVAILABLE) throw lastError;
        this.current = (this.current + 1) % this.services.length;
      }
    }
    throw lastError!;
  }

  /** A server stream on the current master. Callers reconnect (and so fail over) when it errors. */
  stream<Res>(open: (s: Services, md: Metadata) => ClientReadableStream<Res>): ClientReadableStream<Res> {
    return open(this.services[this.current], this.metadata());
  }

  /** Moves to the next master; streams call this when theirs failed with UNAVAILABLE. */
  failover(): void {
    this.current = (this.current + 1) % this.services.length;
  }

  get address(): string {
    return this.services[this.current].address;
  }

  close(): void {
    for (const s of this.services) for (const c of [s.pods, s.nodes, s.deployments, s.cluster, s.services, s.endpoints, s.ingresses]) c.close();
  }
}

function connect(address: string): Services {
  const creds = grpcCredentials.createInsecure();
  return {
    address,
    pods: new PodServiceClient(address, creds, CHANNEL_OPTIONS),
    nodes: new NodeServiceClient(address, creds, CHANNEL_OPTIONS),
    deployments: new DeploymentServiceClient(address, creds, CHANNEL_OPTIONS),
    cluster: new ClusterServiceClient(address, creds, CHANNEL_OPTIONS),
    services: new ServiceServiceClient(address, creds, CHANNEL_OPTIONS),
    endpoints: new EndpointsServiceClient(address, creds, CHANNEL_OPTIONS),
    ingresses: new IngressServiceClient(address, creds, CHANNEL_OPTIONS),
  };
}

/** One readable line for a failed call: "NOT_FOUND: pod "web" not found". */
export function describeError(e: unknown): string {
  const err = e as Partial<ServiceError>;
  if (typeof err?.code === "number") {
    const name = status[err.code] ?? `code ${err.code}`;
    const details = err.details || err.message || "";
    if (err.code === status.UNAVAILABLE) return `UNAVAILABLE: cannot reach the master: ${details}`;
    return `${name}: ${details}`;
  }
  return e instanceof Error ? e.message : String(e);
}

export function isCode(e: unknown, code: status): boolean {
  return (e as Partial<ServiceError>)?.code === code;
}
