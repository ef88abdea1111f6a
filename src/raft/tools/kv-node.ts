// A Raft-replicated key-value node as an OS process: the library's real parts (file storage with fsync, the
// gRPC transport, the driver) around the simulator's KV state machine. The real-process tests and bench/raft run
// it; it is also the smallest example of wiring the library together.
//
//   node dist/src/raft/tools/kv-node.js --id n1 --raft 127.0.0.1:7001 --http 127.0.0.1:8001 \
//        --peers n1=127.0.0.1:7001,n2=127.0.0.2:7001,n3=127.0.0.3:7001 --data DIR
//
// HTTP API (JSON): POST /propose {op,key,value[,expect],id} → {index,term,ok}; GET /read?key=K → {value}
// (linearizable: a read barrier first); GET /status; GET /log → [{index,term,type,crc}]. Errors: 503 with
// {error, code} (code is the RaftError code, such as "no-leader").
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import * as grpc from "@grpc/grpc-js";
import { crc32c } from "../crc32c.js";
import { FileLogStorage } from "../file-log-storage.js";
import { FileSnapshotStorage } from "../file-snapshot-storage.js";
import { GrpcTransport, RAFT_SERVER_OPTIONS } from "../grpc-transport.js";
import { RaftNode } from "../node.js";
import { osRandom } from "../random.js";
import { KvMachine, encodeCommand, type KvCommand } from "../sim/kv-machine.js";
import { RaftError } from "../types.js";

interface Args {
  id: string;
  raft: string;
  http: string;
  peers: Map<string, string>;
  data: string;
  tickMs: number;
  snapshotThreshold: number;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string, fallback?: string) => {
    const i = argv.indexOf(`--${name}`);
    const value = i >= 0 ? argv[i + 1] : fallback;
    if (value === undefined) throw new Error(`--${name} is required`);
    return value;
  };
  const peers = new Map(get("peers").split(",").map((p) => p.split("=") as [string, string]));
  return {
    id: get("id"),
    raft: get("raft"),
    http: get("http"),
    peers,
    data: get("data"),
    tickMs: Number(get("tick-ms", "50")),
    snapshotThreshold: Number(get("snapshot-threshold", "10000")),
  };
}


async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const snapshots = new FileSnapshotStorage(args.data);
  const storage = await FileLogStorage.open(args.data, {
    snapshots,
    onRepair: (repair) => process.stdout.write(`kv-node ${args.id} repaired its log: ${JSON.stringify(repair)}\n`),
  });
  const machine = new KvMachine();
  // Messages can arrive before the node has started; until then they are dropped, as on a lossy network.
  const ref: { node?: RaftNode } = {};
  const transport = new GrpcTransport({ id: args.id, clusterId: "kv", onMessage: (m) => ref.node?.step(m) });
  for (const [id, address] of args.peers) if (id !== args.id) transport.setPeer(id, address);
  const server = new grpc.Server(RAFT_SERVER_OPTIONS);
  transport.addToServer(server);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(args.raft, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
  );
  const running = await RaftNode.start({
    id: args.id,
    storage,
    snapshots,
    stateMachine: machine,
    transport,
    random: osRandom,
    bootstrap: { voters: [...args.peers.keys()], learners: [] },
    snapshotThreshold: args.snapshotThreshold,
  });
  ref.node = running;
  const ticker = setInterval(() => running.tick(), args.tickMs);
  const http = createServer((req, res) => void handle(running, machine, storage, req, res));
  await new Promise<void>((resolve) => http.listen(Number(args.http.split(":")[1]), args.http.split(":")[0], resolve));
  process.stdout.write(`kv-node ${args.id} ready\n`);
  const stop = async () => {
    clearInterval(ticker);
    http.close();
    await running.stop();
    await transport.close();
    server.forceShutdown();
    await storage.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function reply(res: ServerResponse, code: number, value: unknown): void {
  res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(value));
}

async function handle(node: RaftNode, machine: KvMachine, storage: FileLogStorage, req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? "/", "http://x");
  try {
    if (req.method === "POST" && url.pathname === "/propose") {
      const command = JSON.parse(await body(req)) as KvCommand;
      return reply(res, 200, await node.propose(encodeCommand(command)));
    }
    if (url.pathname === "/read") {
      await node.readBarrier();
      return reply(res, 200, { value: machine.get(url.searchParams.get("key") ?? "") ?? null });
    }
    if (url.pathname === "/status") return reply(res, 200, { ...node.status(), progress: undefined });
    if (url.pathname === "/log") {
      const [first, last] = [storage.firstIndex(), storage.lastIndex()];
      const entries = last >= first ? storage.entries(first, last + 1, Number.MAX_SAFE_INTEGER) : [];
      return reply(res, 200, entries.map((e) => ({ index: e.index, term: e.term, type: e.type, crc: crc32c(e.data) })));
    }
    reply(res, 404, { error: "not found" });
  } catch (e) {
    const code = e instanceof RaftError ? e.code : "internal";
    reply(res, 503, { error: e instanceof Error ? e.message : String(e), code });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`kv-node: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
