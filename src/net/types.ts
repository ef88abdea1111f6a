// What the node's network pieces (proxy, DNS, ingress) are told about the cluster: a plain, already-resolved view of
// Services, their ready endpoints and Ingress rules. The agent builds it from the masters' watches (through the API
// in src/api); these modules never talk to masters themselves, so each is testable with a literal view.

export type Protocol = "TCP" | "UDP";

/** One ready backend of a service port: where a pod's container port answers on its node. */
export interface Backend {
  /** The node's address (or, with the process driver on one machine, the pod's 127.0.0.x address). */
  address: string;
  port: number;
  /** namespace/name of the pod, for logs and tests. */
  pod: string;
  node: string;
  /**
   * Set when the pod runs on this node and `address:port` was rewritten from its published port to the
   * container's own address and port (local-backends.ts): dialled directly, past Docker's port publishing.
   */
  podNetwork?: true;
}

export interface ServicePortView {
  /** The port's name ("" when the service has a single unnamed port). */
  name: string;
  /** The port on the virtual IP. */
  port: number;
  protocol: Protocol;
  /** 30000-32767 when the service is of type NodePort, else 0. */
  nodePort: number;
  /** Ready backends for this port; empty when no pod is ready (connections are refused, HTTP gets 503). */
  backends: Backend[];
}

export interface ServiceView {
  namespace: string;
  name: string;
  /** The virtual IP ("" for a service without one). */
  clusterIp: string;
  ports: ServicePortView[];
  /** "ClientIP": a client address keeps going to the same backend while it stays ready. */
  sessionAffinity: "None" | "ClientIP";
}

export interface IngressPathView {
  /** Matches a request path equal to it or below it ("/api" matches "/api" and "/api/x", not "/apix"). */
  pathPrefix: string;
  service: string;
  /** The service port, by number or by name. */
  port: number | string;
}

export interface IngressRuleView {
  /** "" matches any host. Compared without the port, case-insensitively. */
  host: string;
  paths: IngressPathView[];
}

export interface IngressView {
  namespace: string;
  name: string;
  rules: IngressRuleView[];
  /** Where requests that match no rule go; without it they get 404. */
  defaultBackend?: { service: string; port: number | string };
}

/** Everything the node's network pieces act on, replaced as a whole on every change. */
export interface ClusterNetworkView {
  services: ServiceView[];
  ingresses: IngressView[];
}

/** A service proxy: makes every VIP:port (and NodePort) of `services` answer on this node. */
export interface ServiceProxy {
  readonly mode: "userspace" | "nftables";
  /** Brings the node's state to `services`: opens what is new, closes what is gone, touches only what changed. */
  sync(services: ServiceView[]): Promise<void>;
  close(): Promise<void>;
}
