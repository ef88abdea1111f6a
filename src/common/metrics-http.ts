// Serves a prom-client registry as Prometheus text on /metrics.
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export async function serveMetrics(registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end("try /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (e: Error) => res.writeHead(500).end(`${e.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

export function addressOf(server: Server): string {
  const a = server.address();
  return a && typeof a === "object" ? `${a.address}:${a.port}` : "";
}
