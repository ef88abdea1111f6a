// The contract between the userspace proxy and its TCP/UDP listeners: the route a listener forwards to (a service
// port's balancer, mutated in place by each sync so a backend change reaches the next connection at once), the log,
// and the set of open sockets the proxy tears down on close().
import type { Balancer } from "./balancer.js";

/** The part of a pino logger the userspace proxy uses. */
export interface UserspaceLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const silentLog: UserspaceLog = { info: () => {}, warn: () => {} };

/** One service port as the listeners see it. */
export interface Route {
  /** namespace/name:port, for logs. */
  readonly label: string;
  readonly balancer: Balancer;
}

/** Anything with a destroy(): open proxied sockets, tracked so close() can end them. */
export interface Destroyable {
  destroy(): void;
}
