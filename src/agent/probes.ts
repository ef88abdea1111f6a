// Runs one readiness probe against one container, once: an HTTP GET or a TCP connect to where the container's port
// is published on this node, or a command run in the container by the runtime. Never throws: anything that goes
// wrong (refused, timed out, a bad status, a non-zero exit) is a failed probe, with a detail for the log.
import { request } from "node:http";
import { connect } from "node:net";
import type { Probe } from "../gen/flotilla/v1/pod.js";
import type { PublishedPort, Runtime } from "./runtime/runtime.js";

export interface ProbeTarget {
  containerId: string;
  /** The container's ports as published on this node. */
  ports: PublishedPort[];
  /** Stands in for a port published on all addresses (0.0.0.0 or none). */
  nodeAddress: string;
}

export interface ProbeResult {
  passed: boolean;
  detail: string;
}

export interface HostPort {
  host: string;
  port: number;
}

export async function runProbe(runtime: Runtime, probe: Probe, target: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  if (probe.exec) return execProbe(runtime, target.containerId, probe.exec.command, timeoutMs);
  const ref = probe.httpGet?.port ?? probe.tcpSocket?.port;
  if (ref === undefined) return { passed: false, detail: "the probe has no action" };
  const address = publishedAddress(ref, target);
  if (address === undefined) return { passed: false, detail: `container port ${ref} is not published on this node` };
  if (probe.httpGet) return httpProbe(address, probe.httpGet.path || "/", timeoutMs);
  return tcpProbe(address, timeoutMs);
}

/** A port reference ("8080" for a container port number, or a port's name) as the host address it is published at. */
export function publishedAddress(ref: string, target: ProbeTarget): HostPort | undefined {
  const byNumber = /^\d+$/.test(ref);
  const port = target.ports.find((p) => p.protocol === "TCP" && (byNumber ? p.containerPort === Number(ref) : p.name === ref));
  if (port === undefined || port.hostPort <= 0) return undefined;
  const host = port.hostIp && port.hostIp !== "0.0.0.0" ? port.hostIp : target.nodeAddress;
  return { host, port: port.hostPort };
}

/** Any status from 200 to 399 passes, as in Kubernetes; redirects are not followed. */
function httpProbe({ host, port }: HostPort, path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const where = `GET http://${host}:${port}${path}`;
    // No shared agent: a probe must not ride on (or leave behind) a kept-alive connection.
    const req = request({ host, port, path, method: "GET", agent: false, headers: { "User-Agent": "flotilla-probe", Connection: "close" } });
    const finish = (result: ProbeResult) => {
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ passed: false, detail: `${where}: no answer within ${timeoutMs} ms` }), timeoutMs);
    req.once("response", (res) => {
      // Only the status counts; the body is dropped, and destroying it mid-way makes it emit an error to ignore.
      res.on("error", () => undefined);
      res.resume();
      const status = res.statusCode ?? 0;
      finish({ passed: status >= 200 && status < 400, detail: `${where}: ${status}` });
    });
    req.on("error", (err) => finish({ passed: false, detail: `${where}: ${err.message}` }));
    req.end();
  });
}

function tcpProbe({ host, port }: HostPort, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const where = `TCP ${host}:${port}`;
    const socket = connect({ host, port });
    const finish = (result: ProbeResult) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ passed: false, detail: `${where}: no connection within ${timeoutMs} ms` }), timeoutMs);
    socket.once("connect", () => finish({ passed: true, detail: `${where}: connected` }));
    socket.on("error", (err) => finish({ passed: false, detail: `${where}: ${err.message}` }));
  });
}

async function execProbe(runtime: Runtime, containerId: string, command: string[], timeoutMs: number): Promise<ProbeResult> {
  const what = `exec ${command.join(" ")}`;
  try {
    const code = await runtime.exec(containerId, command, timeoutMs);
    return { passed: code === 0, detail: `${what}: exit code ${code}` };
  } catch (err) {
    return { passed: false, detail: `${what}: ${err instanceof Error ? err.message : String(err)}` };
  }
}
