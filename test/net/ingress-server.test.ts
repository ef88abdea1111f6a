// The HTTP ingress on real loopback sockets: backends are node:http servers on 127.0.0.x that answer with their
// name, the ingress listens on 127.0.0.1 and the view is a variable the test changes between requests.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Socket } from "node:net";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/common/logger.js";
import { IngressServer, type IngressLog } from "../../src/net/ingress-server.js";
import type { Backend, ClusterNetworkView, IngressView, ServiceView } from "../../src/net/types.js";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});

async function listen(server: Server | ReturnType<typeof createTcpServer>, address: string): Promise<number> {
  server.listen(0, address);
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

interface TestBackend {
  backend: Backend;
  /** Requests this backend has received. */
  hits: number;
}

/** A backend answering "<name>" (or as `handler` says), counting the requests it gets. */
async function startBackend(name: string, address: string, handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestBackend> {
  const server = createServer((req, res) => {
    t.hits++;
    if (handler) return handler(req, res);
    req.resume();
    res.end(name);
  });
  const port = await listen(server, address);
  cleanup.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const t: TestBackend = { backend: { address, port, pod: `default/${name}`, node: "n1" }, hits: 0 };
  return t;
}

/** A port on `address` where nothing listens: connections to it are refused. */
async function refusedBackend(address: string): Promise<Backend> {
  const server = createTcpServer();
  const port = await listen(server, address);
  await new Promise((resolve) => server.close(resolve));
  return { address, port, pod: "default/gone", node: "n1" };
}

function service(name: string, backends: Backend[]): ServiceView {
  return { namespace: "default", name, clusterIp: "", sessionAffinity: "None", ports: [{ name: "http", port: 80, protocol: "TCP", nodePort: 0, backends }] };
}

function catchAll(paths: [prefix: string, service: string][], defaultService?: string): IngressView {
  return {
    namespace: "default",
    name: "main",
    rules: [{ host: "", paths: paths.map(([pathPrefix, svc]) => ({ pathPrefix, service: svc, port: 80 })) }],
    ...(defaultService ? { defaultBackend: { service: defaultService, port: 80 } } : {}),
  };
}

async function startIngress(lookup: () => ClusterNetworkView, log?: IngressLog): Promise<IngressServer> {
  const ingress = new IngressServer({ listen: { address: "127.0.0.1", port: 0 }, lookup, log });
  await ingress.listen();
  cleanup.push(() => ingress.close());
  return ingress;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request to the ingress from 127.0.0.9, on its own connection. */
async function call(ingress: IngressServer, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  const req = request({ host: "127.0.0.1", port: ingress.port, localAddress: "127.0.0.9", path, method: opts.method ?? "GET", headers: opts.headers, agent: false });
  req.end(opts.body);
  const [res] = (await once(req, "response")) as [IncomingMessage];
  let body = "";
  for await (const chunk of res) body += String(chunk);
  return { status: res.statusCode ?? 0, headers: res.headers, body };
}

describe("IngressServer routing", () => {
  it("routes by host and by longest path prefix, with a default backend", async () => {
    const [web, api, v2, shop, fallback] = await Promise.all(
      ["web", "api", "v2", "shop", "fallback"].map((n, i) => startBackend(n, `127.0.0.${2 + i}`)),
    );
    const view: ClusterNetworkView = {
      services: [service("web", [web!.backend]), service("api", [api!.backend]), service("v2", [v2!.backend]), service("shop", [shop!.backend]), service("fallback", [fallback!.backend])],
      ingresses: [
        {
          namespace: "default",
          name: "main",
          rules: [
            { host: "shop.test", paths: [{ pathPrefix: "/", service: "shop", port: "http" }] },
            { host: "app.test", paths: [{ pathPrefix: "/", service: "web", port: 80 }, { pathPrefix: "/api", service: "api", port: 80 }, { pathPrefix: "/api/v2", service: "v2", port: 80 }] },
          ],
          defaultBackend: { service: "fallback", port: 80 },
        },
      ],
    };
    const ingress = await startIngress(() => view);
    const at = async (host: string, path: string) => (await call(ingress, path, { headers: { host } })).body;
    expect(await at("shop.test", "/api")).toBe("shop");
    expect(await at("SHOP.test:8080", "/")).toBe("shop");
    expect(await at("app.test", "/")).toBe("web");
    expect(await at("app.test", "/api")).toBe("api");
    expect(await at("app.test", "/api/users?x=1")).toBe("api");
    expect(await at("app.test", "/apix")).toBe("web");
    expect(await at("app.test", "/api/v2/orders")).toBe("v2");
    expect(await at("other.test", "/api")).toBe("fallback");
  });

  it("answers 404 when no rule matches and there is no default backend", async () => {
    const web = await startBackend("web", "127.0.0.2");
    const view: ClusterNetworkView = {
      services: [service("web", [web.backend])],
      ingresses: [{ namespace: "default", name: "main", rules: [{ host: "app.test", paths: [{ pathPrefix: "/", service: "web", port: 80 }] }] }],
    };
    const ingress = await startIngress(() => view);
    const reply = await call(ingress, "/y?q=1", { headers: { host: "x:81" } });
    expect(reply.status).toBe(404);
    expect(reply.body).toBe('404 no ingress rule matches host "x" path "/y"\n');
    expect(reply.headers["content-type"]).toMatch(/^text\/plain/);
    expect(web.hits).toBe(0);
  });

  it("answers 503 naming the service when it has no ready endpoint or does not exist", async () => {
    const view: ClusterNetworkView = { services: [service("web", [])], ingresses: [catchAll([["/", "web"], ["/missing", "nosuch"]])] };
    const ingress = await startIngress(() => view);
    const empty = await call(ingress, "/");
    expect(empty.status).toBe(503);
    expect(empty.body).toBe("503 no ready endpoint for service default/web port 80\n");
    const missing = await call(ingress, "/missing/x");
    expect(missing.status).toBe(503);
    expect(missing.body).toMatch(/^503 no ready endpoint for service default\/nosuch port 80/);
  });

  it("answers 502 when every backend refuses the connection", async () => {
    const backends = [await refusedBackend("127.0.0.2"), await refusedBackend("127.0.0.3")];
    const warnings: string[] = [];
    const log: IngressLog = { info: () => {}, warn: (_obj, msg) => warnings.push(msg) };
    const ingress = await startIngress(() => ({ services: [service("web", backends)], ingresses: [catchAll([["/", "web"]])] }), log);
    const reply = await call(ingress, "/");
    expect(reply.status).toBe(502);
    expect(reply.body).toBe("502 no backend of service default/web port 80 accepted the connection (2 tried)\n");
    expect(warnings).toContain("ingress: no backend accepted the connection");
  });

  it("tries the next backend when one refuses, bodies included", async () => {
    const good = await startBackend("good", "127.0.0.3", (req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += String(c)));
      req.on("end", () => res.end(`good:${body}`));
    });
    const backends = [await refusedBackend("127.0.0.2"), good.backend];
    const ingress = await startIngress(() => ({ services: [service("web", backends)], ingresses: [catchAll([["/", "web"]])] }));
    // Round-robin makes every other request start with the refusing backend: requests 0 and 2 of each kind.
    for (let i = 0; i < 4; i++) expect(await call(ingress, "/")).toMatchObject({ status: 200, body: "good:" });
    for (let i = 0; i < 4; i++) {
      const body = `payload ${i} `.repeat(1000);
      expect(await call(ingress, "/", { method: "POST", body })).toMatchObject({ status: 200, body: `good:${body}` });
    }
    expect(good.hits).toBe(8);
  });

  it("sends a request with a body on a connection of its own, so a backend closing idle connections never costs it a 502", async () => {
    const served = new WeakSet<Socket>();
    let bodyOnReusedSocket = 0;
    const echo = await startBackend("echo", "127.0.0.4", (req, res) => {
      if (req.method === "POST" && served.has(req.socket)) bodyOnReusedSocket++;
      served.add(req.socket);
      let body = "";
      req.on("data", (c: Buffer) => (body += String(c)));
      req.on("end", () => res.end(`echo:${body}`));
    });
    const ingress = await startIngress(() => ({ services: [service("web", [echo.backend])], ingresses: [catchAll([["/", "web"]])] }));
    // Bodiless requests keep a pooled keep-alive connection to the backend; each POST comes right after one.
    for (let i = 0; i < 20; i++) {
      expect(await call(ingress, "/")).toMatchObject({ status: 200, body: "echo:" });
      const body = `item ${i}`;
      expect(await call(ingress, "/", { method: "POST", body })).toMatchObject({ status: 200, body: `echo:${body}` });
    }
    expect(bodyOnReusedSocket).toBe(0);
    expect(echo.hits).toBe(40);
  });

  it("accepts a pino logger and exposes the bound port", async () => {
    const ingress = new IngressServer({ listen: { address: "127.0.0.1", port: 0 }, lookup: () => ({ services: [], ingresses: [] }), log: silentLogger() });
    expect(() => ingress.port).toThrow(/not listening/);
    await ingress.listen();
    cleanup.push(() => ingress.close());
    expect(ingress.port).toBeGreaterThan(0);
    expect((await call(ingress, "/")).status).toBe(404);
  });
});

describe("IngressServer headers", () => {
  /** A backend that answers with the headers and body it received, as JSON. */
  const echo = (req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += String(c)));
    req.on("end", () => res.end(JSON.stringify({ headers: req.headers, body })));
  };

  it("sets X-Forwarded-For (appending), -Proto and -Host and keeps the client's Host", async () => {
    const web = await startBackend("web", "127.0.0.2", echo);
    const ingress = await startIngress(() => ({ services: [service("web", [web.backend])], ingresses: [catchAll([["/", "web"]])] }));
    const fresh = JSON.parse((await call(ingress, "/", { headers: { host: "app.test:8000" } })).body) as { headers: IncomingHttpHeaders };
    expect(fresh.headers).toMatchObject({ host: "app.test:8000", "x-forwarded-for": "127.0.0.9", "x-forwarded-proto": "http", "x-forwarded-host": "app.test:8000" });
    const relayed = JSON.parse((await call(ingress, "/", { headers: { host: "app.test", "x-forwarded-for": "203.0.113.7, 198.51.100.1", "x-forwarded-proto": "https" } })).body) as {
      headers: IncomingHttpHeaders;
    };
    expect(relayed.headers).toMatchObject({ "x-forwarded-for": "203.0.113.7, 198.51.100.1, 127.0.0.9", "x-forwarded-proto": "http", "x-forwarded-host": "app.test" });
  });

  it("drops hop-by-hop request headers and reframes a chunked body", async () => {
    const web = await startBackend("web", "127.0.0.2", echo);
    const ingress = await startIngress(() => ({ services: [service("web", [web.backend])], ingresses: [catchAll([["/", "web"]])] }));
    const req = request({
      host: "127.0.0.1",
      port: ingress.port,
      method: "POST",
      path: "/",
      agent: false,
      headers: { host: "app.test", connection: "keep-alive, X-Secret", "x-secret": "1", "keep-alive": "timeout=5", te: "trailers", "proxy-authorization": "Basic eDp5", "x-kept": "yes" },
    });
    req.write("part one, ");
    req.end("part two");
    const [res] = (await once(req, "response")) as [IncomingMessage];
    let text = "";
    for await (const chunk of res) text += String(chunk);
    const seen = JSON.parse(text) as { headers: IncomingHttpHeaders; body: string };
    expect(seen.body).toBe("part one, part two");
    expect(seen.headers["transfer-encoding"]).toBe("chunked");
    expect(seen.headers["x-kept"]).toBe("yes");
    for (const dropped of ["x-secret", "keep-alive", "te", "proxy-authorization"]) expect(seen.headers[dropped]).toBeUndefined();
  });

  it("drops hop-by-hop response headers", async () => {
    // A raw backend, so its Connection header says exactly what the test wants.
    const raw = createTcpServer((socket: Socket) => {
      socket.on("error", () => {});
      socket.once("data", () =>
        socket.end("HTTP/1.1 200 OK\r\nConnection: close, X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"),
      );
    });
    const port = await listen(raw, "127.0.0.2");
    cleanup.push(() => new Promise((resolve) => raw.close(() => resolve())));
    const backend: Backend = { address: "127.0.0.2", port, pod: "default/raw", node: "n1" };
    const ingress = await startIngress(() => ({ services: [service("web", [backend])], ingresses: [catchAll([["/", "web"]])] }));
    const reply = await call(ingress, "/");
    expect(reply).toMatchObject({ status: 200, body: "ok" });
    expect(reply.headers["x-kept"]).toBe("yes");
    expect(reply.headers["content-length"]).toBe("2");
    for (const dropped of ["x-internal", "keep-alive", "proxy-authenticate"]) expect(reply.headers[dropped]).toBeUndefined();
  });
});

describe("IngressServer load balancing and view changes", () => {
  it("spreads requests round-robin across the ready backends", async () => {
    const backends = await Promise.all(["a", "b", "c"].map((n, i) => startBackend(n, `127.0.0.${2 + i}`)));
    const ingress = await startIngress(() => ({ services: [service("web", backends.map((b) => b.backend))], ingresses: [catchAll([["/", "web"]])] }));
    const answers = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const { body } = await call(ingress, "/");
      answers.set(body, (answers.get(body) ?? 0) + 1);
    }
    expect(Object.fromEntries(answers)).toEqual({ a: 10, b: 10, c: 10 });
  });

  it("applies a view change to the next request", async () => {
    const [one, two] = await Promise.all([startBackend("one", "127.0.0.2"), startBackend("two", "127.0.0.3")]);
    let view: ClusterNetworkView = { services: [service("one", [one.backend]), service("two", [two.backend])], ingresses: [catchAll([["/", "one"]])] };
    const ingress = await startIngress(() => view);
    expect((await call(ingress, "/x")).body).toBe("one");
    view = { ...view, ingresses: [catchAll([["/", "one"], ["/x", "two"]])] };
    expect((await call(ingress, "/x")).body).toBe("two");
    view = { ...view, ingresses: [] };
    expect((await call(ingress, "/x")).status).toBe(404);
  });

  it("sends nothing more to a backend removed from the view", async () => {
    const [a, b] = await Promise.all([startBackend("a", "127.0.0.2"), startBackend("b", "127.0.0.3")]);
    let view: ClusterNetworkView = { services: [service("web", [a.backend, b.backend])], ingresses: [catchAll([["/", "web"]])] };
    const ingress = await startIngress(() => view);
    for (let i = 0; i < 10; i++) await call(ingress, "/");
    expect([a.hits, b.hits]).toEqual([5, 5]);
    view = { ...view, services: [service("web", [a.backend])] };
    for (let i = 0; i < 10; i++) expect((await call(ingress, "/")).body).toBe("a");
    expect([a.hits, b.hits]).toEqual([15, 5]);
  });
});

describe("IngressServer streaming", () => {
  const MiB = 1024 * 1024;

  /** `total` bytes in 64 KiB chunks, made as they are read; onLast runs just before the last chunk is handed out. */
  function generated(total: number, onLast: () => void): { stream: Readable; digest: () => string } {
    const hash = createHash("sha256");
    const chunkSize = 64 * 1024;
    const chunks = total / chunkSize;
    function* produce() {
      for (let i = 0; i < chunks; i++) {
        const chunk = Buffer.alloc(chunkSize, i % 251);
        chunk.writeUInt32BE(i, 0);
        hash.update(chunk);
        if (i === chunks - 1) onLast();
        yield chunk;
      }
    }
    return { stream: Readable.from(produce(), { objectMode: false }), digest: () => hash.digest("hex") };
  }

  it("streams a 50 MiB upload: the backend gets its first bytes before the client has sent them all", async () => {
    let received = 0;
    const backendHash = createHash("sha256");
    const web = await startBackend("web", "127.0.0.2", (req, res) => {
      req.on("data", (c: Buffer) => {
        received += c.length;
        backendHash.update(c);
      });
      req.on("end", () => res.end(String(received)));
    });
    const ingress = await startIngress(() => ({ services: [service("web", [web.backend])], ingresses: [catchAll([["/", "web"]])] }));
    let receivedBeforeLastChunk = -1;
    const upload = generated(50 * MiB, () => (receivedBeforeLastChunk = received));
    const req = request({ host: "127.0.0.1", port: ingress.port, method: "PUT", path: "/upload", agent: false });
    upload.stream.pipe(req);
    const [res] = (await once(req, "response")) as [IncomingMessage];
    let body = "";
    for await (const chunk of res) body += String(chunk);
    expect(res.statusCode).toBe(200);
    expect(body).toBe(String(50 * MiB));
    expect(backendHash.digest("hex")).toBe(upload.digest());
    expect(receivedBeforeLastChunk).toBeGreaterThan(0);
  });

  it("streams a 20 MiB download: the client gets its first bytes before the backend has produced them all", async () => {
    let clientReceived = 0;
    let clientReceivedBeforeLastChunk = -1;
    let download: ReturnType<typeof generated> | undefined;
    const web = await startBackend("web", "127.0.0.2", (req, res) => {
      req.resume();
      download = generated(20 * MiB, () => (clientReceivedBeforeLastChunk = clientReceived));
      res.writeHead(200, { "content-type": "application/octet-stream" });
      download.stream.pipe(res);
    });
    const ingress = await startIngress(() => ({ services: [service("web", [web.backend])], ingresses: [catchAll([["/", "web"]])] }));
    const req = request({ host: "127.0.0.1", port: ingress.port, path: "/download", agent: false });
    req.end();
    const [res] = (await once(req, "response")) as [IncomingMessage];
    const clientHash = createHash("sha256");
    for await (const chunk of res as AsyncIterable<Buffer>) {
      clientReceived += chunk.length;
      clientHash.update(chunk);
    }
    expect(clientReceived).toBe(20 * MiB);
    expect(clientHash.digest("hex")).toBe(download!.digest());
    expect(clientReceivedBeforeLastChunk).toBeGreaterThan(0);
  });
});

describe("IngressServer failures mid-stream", () => {
  it("stops the backend request when the client goes away mid-upload, and keeps serving", async () => {
    let sawData!: () => void;
    const dataSeen = new Promise<void>((resolve) => (sawData = resolve));
    let backendRequestEnded!: (complete: boolean) => void;
    const backendDone = new Promise<boolean>((resolve) => (backendRequestEnded = resolve));
    const web = await startBackend("web", "127.0.0.2", (req, res) => {
      if (req.method !== "PUT") return void res.end("web");
      req.once("data", () => sawData());
      req.on("error", () => {});
      req.on("close", () => backendRequestEnded(req.complete));
      req.resume();
    });
    const ingress = await startIngress(() => ({ services: [service("web", [web.backend])], ingresses: [catchAll([["/", "web"]])] }));
    const req = request({ host: "127.0.0.1", port: ingress.port, method: "PUT", path: "/", agent: false, headers: { "content-length": String(10 * 1024 * 1024) } });
    req.on("error", () => {});
    req.write(Buffer.alloc(1024 * 1024));
    await dataSeen;
    req.destroy();
    expect(await backendDone).toBe(false);
    expect((await call(ingress, "/")).body).toBe("web");
  });

  it("cuts the client's connection when the backend dies mid-response", async () => {
    const web = await startBackend("web", "127.0.0.2", (req, res) => {
      req.resume();
      res.writeHead(200, { "content-length": "100" });
      res.write("only ten b", () => res.destroy());
    });
    const ingress = await startIngress(() => ({ services: [service("web", [web.backend])], ingresses: [catchAll([["/", "web"]])] }));
    const req = request({ host: "127.0.0.1", port: ingress.port, path: "/", agent: false });
    req.end();
    const [res] = (await once(req, "response")) as [IncomingMessage];
    expect(res.statusCode).toBe(200);
    let body = "";
    const ended = await new Promise<"end" | "cut">((resolve) => {
      res.on("data", (c: Buffer) => (body += String(c)));
      res.on("end", () => resolve("end"));
      res.on("error", () => resolve("cut"));
      res.on("close", () => resolve(res.complete ? "end" : "cut"));
    });
    expect(ended).toBe("cut");
    expect(body).toBe("only ten b");
  });
});

describe("IngressServer upgrades", () => {
  it("passes an Upgrade through and pipes the sockets both ways", async () => {
    // The echo backend's upgrade handler: 101, then every byte back.
    const upgradeServer = createServer();
    upgradeServer.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Saw-Host: ${req.headers.host}\r\n\r\n`);
      if (head.length > 0) socket.write(head);
      socket.pipe(socket);
    });
    const port = await listen(upgradeServer, "127.0.0.3");
    cleanup.push(async () => {
      upgradeServer.closeAllConnections();
      await new Promise((resolve) => upgradeServer.close(resolve));
    });
    const backend: Backend = { address: "127.0.0.3", port, pod: "default/ws", node: "n1" };
    const ingress = await startIngress(() => ({ services: [service("ws", [backend]), service("down", [])], ingresses: [catchAll([["/ws", "ws"], ["/down", "down"]])] }));

    const req = request({ host: "127.0.0.1", port: ingress.port, path: "/ws", agent: false, headers: { host: "app.test", connection: "Upgrade", upgrade: "echo" } });
    req.end();
    const [res, socket] = (await once(req, "upgrade")) as [IncomingMessage, Socket, Buffer];
    expect(res.statusCode).toBe(101);
    expect(res.headers["x-saw-host"]).toBe("app.test");
    socket.write("ping");
    const [data] = (await once(socket, "data")) as [Buffer];
    expect(String(data)).toBe("ping");
    socket.destroy();

    const refused = request({ host: "127.0.0.1", port: ingress.port, path: "/down", agent: false, headers: { connection: "Upgrade", upgrade: "echo" } });
    refused.end();
    const [answer] = (await once(refused, "response")) as [IncomingMessage];
    let body = "";
    for await (const chunk of answer) body += String(chunk);
    expect(answer.statusCode).toBe(503);
    expect(body).toBe("503 no ready endpoint for service default/down port 80\n");
  });
});
