// The runtime driver interface: how an agent starts, finds, stops and reads containers. One driver per agent.
// Drivers are stateless towards the master: everything they need to find their containers again after an agent
// restart lives in the containers' labels (docker) or the driver's state directory (process).

/** Labels every managed container carries; `in-netns.sh --stop` and `flotilla up` clean up by MANAGED_LABEL. */
export const MANAGED_LABEL = "flotilla.io/managed";
export const NODE_LABEL = "flotilla.io/node";
export const POD_UID_LABEL = "flotilla.io/pod-uid";
export const POD_NAME_LABEL = "flotilla.io/pod-name";
export const NAMESPACE_LABEL = "flotilla.io/namespace";
export const CONTAINER_LABEL = "flotilla.io/container";
export const SPEC_HASH_LABEL = "flotilla.io/spec-hash";
export const ATTEMPT_LABEL = "flotilla.io/attempt";

export interface PortRequest {
  name: string;
  containerPort: number;
  /** 0: the driver picks a free port on hostIp. */
  hostPort: number;
  hostIp: string;
  protocol: "TCP" | "UDP";
}

export interface ContainerSpec {
  podUid: string;
  podName: string;
  namespace: string;
  containerName: string;
  /** Hash of the pod spec's container; a change means the container must be replaced. */
  specHash: string;
  /** 0 for the first start, then one more per restart. */
  attempt: number;
  image: string;
  command: string[];
  args: string[];
  env: Record<string, string>;
  workingDir: string;
  ports: PortRequest[];
  /** Millicores; undefined means no limit. */
  cpuLimitMillis?: number;
  /** Bytes; undefined means no limit. */
  memoryLimitBytes?: number;
  imagePullPolicy: "IfNotPresent" | "Never" | "Always";
  /** The resolver a container gets (the node's cluster DNS); the process driver's processes use the host's. */
  dns?: { nameservers: string[]; search: string[]; options: string[] };
}

export interface PublishedPort {
  name: string;
  containerPort: number;
  hostIp: string;
  hostPort: number;
  protocol: "TCP" | "UDP";
}

export interface RuntimeContainer {
  id: string;
  podUid: string;
  podName: string;
  namespace: string;
  containerName: string;
  specHash: string;
  attempt: number;
  state: "created" | "running" | "exited";
  exitCode?: number;
  /** RFC 3339. */
  startedAt?: string;
  finishedAt?: string;
  /** A short human reason for an exit, such as "OOMKilled" or "Error". */
  reason?: string;
  ports: PublishedPort[];
  /** The container's own address on its network while it runs (Docker's bridge); the process driver has none. */
  address?: string;
}

export interface LogOptions {
  follow: boolean;
  /** 0: everything kept. */
  tailLines: number;
  signal?: AbortSignal;
}

export interface LogChunk {
  stream: "stdout" | "stderr";
  data: Buffer;
}

export interface Runtime {
  readonly name: "docker" | "process";
  /** Human version string for NodeSystemInfo.containerRuntime, such as "docker://20.10.24". */
  version(): Promise<string>;
  /** Every container this driver manages for this node, running or exited. */
  list(): Promise<RuntimeContainer[]>;
  /** Creates and starts a container. Throws RuntimeError with a readable message on failure. */
  start(spec: ContainerSpec): Promise<RuntimeContainer>;
  /** Stops gracefully (SIGTERM, then SIGKILL after graceSeconds). Stopping an exited container is a no-op. */
  stop(id: string, graceSeconds: number): Promise<void>;
  /** Removes a stopped container and what it kept (logs, state). Removing a missing one is a no-op. */
  remove(id: string): Promise<void>;
  logs(id: string, options: LogOptions): AsyncIterable<LogChunk>;
  /**
   * Runs a command in a running container (for exec probes) and resolves with its exit code; its output is
   * discarded. Throws RuntimeError when the command cannot be run or does not finish within timeoutMs.
   */
  exec(id: string, command: string[], timeoutMs: number): Promise<number>;
  /** Calls onChange whenever any managed container changes state; returns an unsubscribe function. */
  watch(onChange: () => void): () => void;
  close(): Promise<void>;
}

export class RuntimeError extends Error {
  constructor(
    message: string,
    /** A kubelet-style reason for ContainerStateWaiting, such as "ErrImageNeverPull" or "CreateContainerError". */
    readonly reason: string,
  ) {
    super(message);
    this.name = "RuntimeError";
  }
}
