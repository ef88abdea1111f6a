// The runtime drivers of the agent: the interface (runtime.ts), Docker (docker.ts), plain host processes
// (process*.ts), and the busybox image that tests and demos run because no registry is reachable.
import type Dockerode from "dockerode";
import { DockerRuntime } from "./docker.js";
import { ProcessRuntime } from "./process.js";
import type { Runtime } from "./runtime.js";

export {
  ATTEMPT_LABEL,
  CONTAINER_LABEL,
  MANAGED_LABEL,
  NAMESPACE_LABEL,
  NODE_LABEL,
  POD_NAME_LABEL,
  POD_UID_LABEL,
  RuntimeError,
  SPEC_HASH_LABEL,
} from "./runtime.js";
export type {
  ContainerSpec,
  LogChunk,
  LogOptions,
  PortRequest,
  PublishedPort,
  Runtime,
  RuntimeContainer,
} from "./runtime.js";
export { DockerRuntime, PORTS_LABEL } from "./docker.js";
export type { DockerRuntimeOptions } from "./docker.js";
export { ProcessRuntime } from "./process.js";
export type { ProcessRuntimeOptions } from "./process.js";
export { BUSYBOX_PATH, DEFAULT_BUSYBOX_IMAGE, busyboxAvailable, ensureBusyboxImage } from "./busybox-image.js";

export type RuntimeKind = "docker" | "process";

export interface CreateRuntimeOptions {
  nodeName: string;
  /** docker only; defaults to `new Dockerode()`, which honours DOCKER_HOST. */
  docker?: Dockerode;
  /** process only, and required there. */
  stateDir?: string;
  /** process only; default 20000-29999. */
  portRange?: [number, number];
}

export function createRuntime(kind: RuntimeKind, options: CreateRuntimeOptions): Runtime {
  switch (kind) {
    case "docker":
      return new DockerRuntime({ nodeName: options.nodeName, docker: options.docker });
    case "process":
      if (options.stateDir === undefined) throw new Error("the process runtime needs a stateDir");
      return new ProcessRuntime({ nodeName: options.nodeName, stateDir: options.stateDir, portRange: options.portRange });
  }
}
