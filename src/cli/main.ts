#!/usr/bin/env node
// The `flotilla` command line. Each command is one clear line on error, with a non-zero exit.
import { Command, Option } from "commander";
import { describeError } from "../api/client.js";
import { VERSION } from "../api/version.js";
import { apply } from "./commands/apply.js";
import { runAgent, runMaster } from "./commands/daemons.js";
import { runDemo } from "./commands/demo.js";
import { describe, get } from "./commands/get.js";
import { expose } from "./commands/expose.js";
import { streamLogs } from "./commands/logs.js";
import { connect, out, type GlobalOptions } from "./context.js";
import { deleteObject, resolveKind, resolveTarget } from "./kinds.js";
import { loadValidManifests } from "./commands/apply.js";
import { LocalCluster } from "./local-cluster.js";
import { listMembers, removeMember, restoreSnapshot, saveSnapshot } from "./commands/cluster-admin.js";
import type { CreateTokenResponse, ScaleResponse } from "../gen/flotilla/v1/cluster.js";

const program = new Command("flotilla")
  .description("Flotilla: a container orchestrator in TypeScript")
  .version(VERSION)
  .option("--config <file>", "client config (default: $FLOTILLA_CONFIG or .flotilla/flotilla.yaml)")
  .option("-n, --namespace <ns>", "namespace (default: the config's, else \"default\")")
  .showHelpAfterError();

const globals = (): GlobalOptions => program.opts<GlobalOptions>();

/** Runs a client command with a connected client and closes it afterwards. */
function withClient<A extends unknown[]>(fn: (ctx: ReturnType<typeof connect>, ...args: A) => Promise<void>) {
  return async (...args: A) => {
    const ctx = connect(globals());
    try {
      await fn(ctx, ...args);
    } finally {
      ctx.client.close();
    }
  };
}

program
  .command("master")
  .description("run a master: the API server, the store, the scheduler and the controllers")
  .option("--listen <host:port>", "gRPC API address", "127.0.0.1:7443")
  .option("--data <dir>", "data directory", ".flotilla/master")
  .option("--name <name>", "this master's member name (with --initial-cluster)")
  .option("--initial-cluster <list>", "replicate the store with Raft among these masters: NAME=HOST:PORT,... (Raft peer addresses, this one included)")
  .option("--raft-listen <host:port>", "where this master's Raft transport listens (default: its --initial-cluster address)")
  .option("--init", "start a new Raft-replicated cluster of this one master (needs --name and --raft-listen); add more with --join")
  .option("--join <host:port>", "join the cluster of the master at this API address: added as a learner, promoted once caught up")
  .option("--snapshot-threshold <entries>", "replicated store: snapshot the state machine and compact the Raft log every this many entries (etcd's --snapshot-count)", "100000")
  .option("--etcd-listen <host:port>", "also serve etcd's v3 API here without a login (it is on --listen too, behind etcd's login: user root, password an admin token); bind to a trusted address")
  .option("--service-cidr <cidr>", "range of services' virtual IPs (127.x ranges need no set-up on a node: for clusters without root)", "10.96.0.0/16")
  .option("--metrics-listen <host:port>", "serve Prometheus /metrics here")
  .option("--scoring <strategy>", "least-allocated (spread) or most-allocated (bin-pack)", "least-allocated")
  .option("--heartbeat-interval <s>", "seconds between agent heartbeats", "5")
  .option("--node-grace-period <s>", "seconds without heartbeats before a node is NotReady", "40")
  .option("--pod-eviction-timeout <s>", "seconds a node may stay NotReady before its pods are replaced", "60")
  .option("--compaction-interval <s>", "seconds between compactions of the store's history (by the leader)", "300")
  .option("--retain-revisions <n>", "revisions of history kept by each compaction (older watches must list again)", "10000")
  .option("--allocation-repair-interval <s>", "seconds between the leader's passes that give back VIPs and NodePorts no service holds (released when seen twice)", "60")
  .action(runMaster);

program
  .command("agent")
  .description("run an agent: join a cluster and run the pods bound to this node")
  .requiredOption("--server <host:port,...>", "master addresses")
  .option("--token <token>", "join token from 'flotilla token create' (or $FLOTILLA_TOKEN)")
  .option("--data <dir>", "data directory", ".flotilla/agent")
  .addOption(new Option("--driver <driver>", "runtime driver").choices(["docker", "process"]).default("docker"))
  .option("--address <ip>", "this node's address: pods publish ports here (default: its first non-loopback IPv4)")
  .option("--name <name>", "node name (default: the hostname)")
  .option("--api-port <port>", "port of the agent's own gRPC endpoint (0: any)", "0")
  .option("--metrics-listen <host:port>", "serve Prometheus /metrics here")
  .option("--label <key=value>", "node label (repeatable)", (v: string, all: string[]) => [...all, v], [] as string[])
  .addOption(new Option("--proxy-mode <mode>", "service proxy: auto (nftables where nft works and the agent is root, else userspace), nftables, userspace, or off").choices(["auto", "nftables", "userspace", "off"]).default("auto"))
  .option("--dns-listen <host:port>", "serve cluster DNS here (default: ADDRESS:53 when root, else off; \"off\" turns it off)")
  .option("--cluster-domain <domain>", "the cluster DNS domain", "flotilla.local")
  .option("--ingress <port>", "route HTTP on ADDRESS:PORT by the cluster's Ingress rules")
  .action(runAgent);

program
  .command("up")
  .description("bring up a local cluster as processes on 127.0.0.x; Ctrl-C stops it")
  .option("--masters <n>", "masters", "1")
  .option("--agents <n>", "agents", "1")
  .addOption(new Option("--driver <driver>", "runtime driver").choices(["docker", "process"]).default("docker"))
  .option("--data <dir>", "data directory", ".flotilla")
  .option("--port <port>", "the master's API port", "7443")
  .option("--keep", "keep the pods' containers when stopping")
  .action(async (flags: { masters: string; agents: string; driver: "docker" | "process"; data: string; port: string; keep?: boolean }) => {
    const say = (s: string) => out(s);
    const cluster = new LocalCluster({
      masters: Number(flags.masters), agents: Number(flags.agents), driver: flags.driver,
      dataDir: flags.data, port: Number(flags.port), keep: Boolean(flags.keep), say,
    });
    try {
      await cluster.start();
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    say(`Use it with: flotilla --config ${cluster.configPath} get nodes. Press Ctrl-C to stop.`);
    await new Promise<void>((resolve) => {
      const onSignal = () => void cluster.stop().finally(resolve);
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
    });
  });

program
  .command("demo")
  .description("what `npm start` runs: a local cluster serving examples/hello.yaml")
  .option("--data <dir>", "data directory", ".flotilla")
  .option("--port <port>", "the master's API port", "7443")
  .option("--agents <n>", "agents", "2")
  .option("--driver <driver>", "docker or process (default: docker when it works)")
  .option("--exit", "stop once the replicas answer")
  .action(runDemo);

program
  .command("apply")
  .description("create or update objects from YAML or JSON manifests")
  .requiredOption("-f, --filename <path>", "a file or a directory of manifests")
  .action(withClient(async ({ client, namespace }, flags: { filename: string }) => {
    for (const line of await apply(client, flags.filename, namespace)) out(line);
  }));

program
  .command("get")
  .description("list objects, or show one: get pods|nodes|deployments [NAME]")
  .argument("<type>")
  .argument("[name]")
  .option("-o, --output <format>", "wide, json or yaml")
  .option("-l, --selector <selector>", "label selector, such as app=web,tier!=db")
  .option("-A, --all-namespaces", "list across namespaces")
  .action(withClient(async ({ client, namespace }, type: string, name: string | undefined, flags: { output?: string; selector?: string; allNamespaces?: boolean }) => {
    const target = type.includes("/") ? resolveTarget(type) : { kind: resolveKind(type), name };
    out(await get(client, target.kind, target.name, namespace, flags));
  }));

program
  .command("describe")
  .description("show one object in detail: describe TYPE NAME or TYPE/NAME")
  .argument("<type>")
  .argument("[name]")
  .action(withClient(async ({ client, namespace }, type: string, name?: string) => {
    const target = resolveTarget(type, name);
    out(await describe(client, target.kind, target.name, namespace));
  }));

program
  .command("delete")
  .description("delete objects: delete TYPE NAME, TYPE/NAME or -f FILE")
  .argument("[type]")
  .argument("[name]")
  .option("-f, --filename <path>", "delete what these manifests name")
  .action(withClient(async ({ client, namespace }, type: string | undefined, name: string | undefined, flags: { filename?: string }) => {
    const targets = flags.filename
      ? loadValidManifests(flags.filename).map((m) => ({ kind: m.kind, name: m.object.metadata!.name, ns: m.object.metadata!.namespace || namespace }))
      : type
        ? [{ ...resolveTarget(type, name), ns: namespace }]
        : [];
    if (targets.length === 0) throw new Error("name what to delete: TYPE NAME, TYPE/NAME or -f FILE");
    for (const t of targets) {
      await deleteObject(client, t.kind, t.ns, t.name);
      out(`${t.kind.toLowerCase()}/${t.name} deleted`);
    }
  }));

program
  .command("scale")
  .description("set a deployment's replicas: scale deployment/NAME --replicas N")
  .argument("<target>")
  .argument("[name]")
  .requiredOption("--replicas <n>", "the new number of replicas")
  .action(withClient(async ({ client, namespace }, first: string, name: string | undefined, flags: { replicas: string }) => {
    const target = resolveTarget(first, name);
    const replicas = Number(flags.replicas);
    if (!/^\d+$/.test(flags.replicas)) throw new Error(`--replicas: "${flags.replicas}" must be an integer >= 0`);
    await client.call<ScaleResponse>((s, md, o, cb) => s.cluster.scale({ kind: target.kind, namespace, name: target.name, replicas }, md, o, cb));
    out(`${target.kind.toLowerCase()}/${target.name} scaled`);
  }));

program
  .command("expose")
  .description("make a deployment's pods a service: expose deployment/NAME --port P [--target-port T] [--type NodePort]")
  .argument("<target>")
  .argument("[name]")
  .requiredOption("--port <port>", "the port on the service's virtual IP")
  .option("--target-port <port>", "the container port, by number or name (default: --port)")
  .option("--type <type>", "ClusterIP (default) or NodePort")
  .option("--name <name>", "the service's name (default: the deployment's)")
  .option("--protocol <protocol>", "TCP (default) or UDP")
  .option("--session-affinity <affinity>", "None (default) or ClientIP")
  .action(withClient(async ({ client, namespace }, first: string, name: string | undefined, flags: Parameters<typeof expose>[4]) => {
    const target = resolveTarget(first, name);
    const svc = await expose(client, target.kind, target.name, namespace, flags);
    const nodePorts = (svc.spec?.ports ?? []).filter((p) => p.nodePort).map((p) => ` nodePort ${p.nodePort}`).join("");
    out(`service/${svc.metadata?.name} exposed on ${svc.spec?.clusterIp}:${svc.spec?.ports[0]?.port}${nodePorts}`);
  }));

program
  .command("logs")
  .description("print a pod's container output")
  .argument("<pod>")
  .option("-c, --container <name>", "the container (default: the pod's only one)")
  .option("-f, --follow", "keep streaming new output")
  .option("--tail <n>", "only the last N lines", "0")
  .action(withClient(async ({ client, namespace }, pod: string, flags: { container?: string; follow?: boolean; tail: string }) => {
    const name = pod.replace(/^(pod|pods|po)\//, "");
    const stream = streamLogs(client, { namespace, name, container: flags.container ?? "", follow: Boolean(flags.follow), tailLines: Number(flags.tail) }, (chunk) =>
      (chunk.stream === "stderr" ? process.stderr : process.stdout).write(chunk.data),
    );
    process.once("SIGINT", () => stream.cancel());
    await stream.done;
  }));

const members = program.command("members").description("the masters of a Raft-replicated cluster");
members
  .command("list")
  .description("list the masters, their roles and the leader")
  .action(withClient(async ({ client }) => out(await listMembers(client))));
members
  .command("remove")
  .description("remove a master from the Raft group")
  .argument("<name>")
  .action(withClient(async ({ client }, name: string) => out(await removeMember(client, name))));

const snapshot = program.command("snapshot").description("back up and restore the cluster's store");
snapshot
  .command("save")
  .description("write a consistent image of the store to FILE")
  .argument("<file>")
  .action(withClient(async ({ client }, file: string) => out(await saveSnapshot(client, file))));
snapshot
  .command("restore")
  .description("make DIR a master's data directory holding the backup; then start the master with the same --initial-cluster")
  .argument("<file>")
  .requiredOption("--data <dir>", "an empty data directory for this master")
  .requiredOption("--name <name>", "this master's member name")
  .requiredOption("--initial-cluster <list>", "the new group: NAME=HOST:PORT,... (Raft peer addresses)")
  .action(async (file: string, flags: { data: string; name: string; initialCluster: string }) => out(await restoreSnapshot(file, flags.data, flags.name, flags.initialCluster)));

const token = program.command("token").description("manage join tokens");
token
  .command("create")
  .description("create a join token for 'flotilla agent --token'")
  .option("--ttl <seconds>", "validity in seconds (0: 24 hours)", "0")
  .option("--description <text>", "what the token is for", "")
  .action(withClient(async ({ client }, flags: { ttl: string; description: string }) => {
    if (!/^\d+$/.test(flags.ttl)) throw new Error(`--ttl: "${flags.ttl}" must be a whole number of seconds`);
    const res = await client.call<CreateTokenResponse>((s, md, o, cb) => s.cluster.createToken({ ttlSeconds: BigInt(flags.ttl), description: flags.description }, md, o, cb));
    out(res.token);
  }));

program.parseAsync(process.argv).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`error: ${describeError(e)}\n`);
    process.exit(1);
  },
);
