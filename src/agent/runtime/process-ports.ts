// Host ports for the process driver. A process binds its port itself, some time after it starts, so a port that
// binds now is only a good guess: ports already handed to this driver's live containers are skipped even when
// they are still free, and the scan starts at a random offset so that agents sharing a host rarely collide.
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { randomInt } from "node:crypto";
import { RuntimeError, type PortRequest, type PublishedPort } from "./runtime.js";

export type PortRange = [number, number];

/** The ports already spoken for; add() claims one for the caller. */
export interface PortClaims {
  has(port: number): boolean;
  add(port: number): void;
}

export async function assignPorts(
  requests: PortRequest[],
  range: PortRange,
  taken: PortClaims,
): Promise<PublishedPort[]> {
  const published: PublishedPort[] = [];
  for (const request of requests) {
    const hostIp = request.hostIp || "0.0.0.0";
    const hostPort =
      request.hostPort > 0
        ? await claimFixedPort(hostIp, request.hostPort, request.protocol, taken)
        : await claimFreePort(hostIp, request.protocol, range, taken);
    published.push({ ...request, hostIp, hostPort });
  }
  return published;
}

async function claimFixedPort(
  hostIp: string,
  port: number,
  protocol: PortRequest["protocol"],
  taken: PortClaims,
): Promise<number> {
  if (taken.has(port) || !(await canBind(hostIp, port, protocol))) {
    throw new RuntimeError(`Bind for ${hostIp}:${port} failed: port is already allocated`, "RunContainerError");
  }
  taken.add(port);
  return port;
}

async function claimFreePort(
  hostIp: string,
  protocol: PortRequest["protocol"],
  [low, high]: PortRange,
  taken: PortClaims,
): Promise<number> {
  const size = high - low + 1;
  const offset = randomInt(size);
  for (let i = 0; i < size; i++) {
    const port = low + ((offset + i) % size);
    if (taken.has(port) || !(await canBind(hostIp, port, protocol))) continue;
    // Checked again after the await: a concurrent start may have claimed it meanwhile.
    if (taken.has(port)) continue;
    taken.add(port);
    return port;
  }
  throw new RuntimeError(`no free ${protocol} port on ${hostIp} in ${low}-${high}`, "RunContainerError");
}

export function canBind(hostIp: string, port: number, protocol: PortRequest["protocol"]): Promise<boolean> {
  return protocol === "UDP" ? canBindUdp(hostIp, port) : canBindTcp(hostIp, port);
}

function canBindTcp(hostIp: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host: hostIp, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function canBindUdp(hostIp: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket(hostIp.includes(":") ? "udp6" : "udp4");
    socket.once("error", () => {
      try {
        socket.close();
      } catch {
        // Never bound, so there is nothing to close.
      }
      resolve(false);
    });
    socket.bind({ address: hostIp, port, exclusive: true }, () => socket.close(() => resolve(true)));
  });
}
