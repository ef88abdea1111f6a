// The proxy bench's HTTP backend, as the source of a standalone ES module: the same program runs as a plain
// process (`--backend process`) and inside the bench's FROM-scratch node image (`--backend docker --image node`),
// so the two backends differ only in where they run. It answers every request with 200 and a 22-byte text body,
// keep-alive on (node:http's defaults), and on SIGUSR2 prints `served <n> <requests> <connections>` (n counts the
// reports, so a reader of a container's log can tell a fresh line from an old one).
//
//   node server.mjs PORT NAME [ADDRESS [stdin]]
//
// ADDRESS defaults to 0.0.0.0; with `stdin` it also exits when its stdin closes (the bench holds that pipe, so the
// plain process never outlives it). It prints `ready ADDRESS:PORT` once it listens, and exits on SIGTERM or SIGINT.

export const BACKEND_PORT = 8080;

/** The body for replica `name` ("hello from web-1     \n": 22 bytes for names of up to 10 characters). */
export const backendBody = (name: string) => `hello from ${name.padEnd(10)}\n`;

export const BACKEND_SERVER_SOURCE = `// Written by bench/proxy.ts (bench/lib/backend-server.ts).
import { createServer } from "node:http";
const [port, name, address = "0.0.0.0", watch] = process.argv.slice(2);
const body = Buffer.from(\`hello from \${name.padEnd(10)}\\n\`);
let requests = 0;
let connections = 0;
let reports = 0;
const server = createServer((_req, res) => {
  requests++;
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
});
server.on("connection", () => connections++);
process.on("SIGUSR2", () => process.stdout.write(\`served \${++reports} \${requests} \${connections}\\n\`));
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  server.closeAllConnections();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
if (watch === "stdin") {
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();
}
server.once("error", (err) => {
  process.stderr.write(\`listen \${address}:\${port}: \${err.message}\\n\`);
  process.exit(1);
});
server.listen(Number(port), address, () => process.stdout.write(\`ready \${address}:\${port}\\n\`));
`;
