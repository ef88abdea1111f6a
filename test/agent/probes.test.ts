// The probe runners against real sockets on 127.0.0.1: an HTTP server answering chosen statuses (or never), a closed
// port, and a runtime whose exec answers an exit code or fails. Also where a port reference leads on the node.
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createTcpServer } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Probe } from "../../src/gen/flotilla/v1/pod.js";
import { publishedAddress, runProbe, type ProbeTarget } from "../../src/agent/probes.js";
import { RuntimeError, type PublishedPort, type Runtime } from "../../src/agent/runtime/runtime.js";

const NODE_ADDRESS = "10.0.0.5";

function published(name: string, containerPort: number, hostPort: number, hostIp = "127.0.0.1"): PublishedPort {
  return { name, containerPort, hostIp, hostPort, protocol: "TCP" };
}

function target(ports: PublishedPort[]): ProbeTarget {
  return { containerId: "c1", ports, nodeAddress: NODE_ADDRESS };
}

/** A runtime whose only working part is exec. */
function execRuntime(exec: Runtime["exec"]): Runtime {
  const unused = () => {
    throw new Error("not used by probes");
  };
  return { name: "process", version: unused, list: unused, start: unused, stop: unused, remove: unused, logs: unused, watch: unused, close: unused, exec };
}

const noRuntime = execRuntime(() => Promise.reject(new Error("no exec here")));

describe("where a probe connects", () => {
  const ports = [published("http", 8080, 20001), published("admin", 9090, 20002, "0.0.0.0"), { ...published("dns", 53, 20003), protocol: "UDP" as const }];

  it("finds a port by container port number or by name, at its published host address", () => {
    expect(publishedAddress("8080", target(ports))).toEqual({ host: "127.0.0.1", port: 20001 });
    expect(publishedAddress("http", target(ports))).toEqual({ host: "127.0.0.1", port: 20001 });
  });

  it("uses the node's address for a port published on all addresses", () => {
    expect(publishedAddress("admin", target(ports))).toEqual({ host: NODE_ADDRESS, port: 20002 });
    expect(publishedAddress("9090", target([{ ...ports[1], hostIp: "" }]))).toEqual({ host: NODE_ADDRESS, port: 20002 });
  });

  it("finds nothing for an unknown, unpublished or UDP port", () => {
    expect(publishedAddress("7777", target(ports))).toBeUndefined();
    expect(publishedAddress("metrics", target(ports))).toBeUndefined();
    expect(publishedAddress("dns", target(ports))).toBeUndefined();
    expect(publishedAddress("http", target([published("http", 8080, 0)]))).toBeUndefined();
  });
});

describe("probe runners", () => {
  let http: Server;
  let httpPort: number;
  let closedPort: number;

  beforeAll(async () => {
    http = createHttpServer((req, res) => {
      if (req.url === "/hang") return; // never answers
      res.statusCode = Number(req.url?.slice(1).split("?")[0]) || 200;
      res.end("body");
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    httpPort = (http.address() as AddressInfo).port;
    const closed = createTcpServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
  });
  afterAll(async () => {
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  });

  const httpGet = (path: string, port = "http") => Probe.fromPartial({ httpGet: { path, port } });

  it("passes an HTTP GET answered with 200 to 399, and fails 400 and up", async () => {
    const t = target([published("http", 8080, httpPort)]);
    for (const status of [200, 204, 302, 399]) {
      expect(await runProbe(noRuntime, httpGet(`/${status}`), t, 1000)).toMatchObject({ passed: true });
    }
    for (const status of [400, 404, 500, 503]) {
      expect(await runProbe(noRuntime, httpGet(`/${status}`), t, 1000)).toEqual({
        passed: false,
        detail: `GET http://127.0.0.1:${httpPort}/${status}: ${status}`,
      });
    }
  });

  it("GETs / when the probe gives no path, and keeps a query string", async () => {
    const t = target([published("http", 8080, httpPort)]);
    expect(await runProbe(noRuntime, httpGet(""), t, 1000)).toMatchObject({ passed: true, detail: expect.stringContaining(":" + httpPort + "/: 200") });
    expect(await runProbe(noRuntime, httpGet("/500?x=1"), t, 1000)).toMatchObject({ passed: false });
  });

  it("fails an HTTP GET that gets no answer within the timeout, or is refused", async () => {
    const hang = await runProbe(noRuntime, httpGet("/hang"), target([published("http", 8080, httpPort)]), 200);
    expect(hang).toEqual({ passed: false, detail: `GET http://127.0.0.1:${httpPort}/hang: no answer within 200 ms` });
    const refused = await runProbe(noRuntime, httpGet("/"), target([published("http", 8080, closedPort)]), 1000);
    expect(refused).toMatchObject({ passed: false, detail: expect.stringContaining("ECONNREFUSED") });
  });

  it("passes a TCP probe that connects and fails one that is refused", async () => {
    const tcp = Probe.fromPartial({ tcpSocket: { port: "8080" } });
    expect(await runProbe(noRuntime, tcp, target([published("http", 8080, httpPort)]), 1000)).toEqual({
      passed: true,
      detail: `TCP 127.0.0.1:${httpPort}: connected`,
    });
    expect(await runProbe(noRuntime, tcp, target([published("http", 8080, closedPort)]), 1000)).toMatchObject({ passed: false });
  });

  it("fails a probe whose port is not published, without connecting anywhere", async () => {
    expect(await runProbe(noRuntime, httpGet("/", "metrics"), target([]), 1000)).toEqual({
      passed: false,
      detail: "container port metrics is not published on this node",
    });
  });

  it("runs an exec probe in the container through the runtime: exit code 0 passes", async () => {
    const calls: unknown[] = [];
    const runtime = execRuntime(async (id, command, timeoutMs) => {
      calls.push({ id, command, timeoutMs });
      return command[1] === "ok" ? 0 : 1;
    });
    expect(await runProbe(runtime, Probe.fromPartial({ exec: { command: ["check", "ok"] } }), target([]), 3000)).toEqual({
      passed: true,
      detail: "exec check ok: exit code 0",
    });
    expect(await runProbe(runtime, Probe.fromPartial({ exec: { command: ["check", "bad"] } }), target([]), 3000)).toMatchObject({ passed: false });
    expect(calls[0]).toEqual({ id: "c1", command: ["check", "ok"], timeoutMs: 3000 });
  });

  it("fails an exec probe the runtime cannot run", async () => {
    const runtime = execRuntime(() => Promise.reject(new RuntimeError("container c1 is not running", "ContainerNotRunning")));
    expect(await runProbe(runtime, Probe.fromPartial({ exec: { command: ["true"] } }), target([]), 1000)).toEqual({
      passed: false,
      detail: "exec true: container c1 is not running",
    });
  });
});
