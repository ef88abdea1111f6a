// The Jepsen-style test from the command line: `node dist/src/store/linearizability/jepsen-main.js --minutes N`
// (or `npm run jepsen -- --minutes N`). Runs a 3-master cluster on 127.0.2.1-3 under the workload and the nemesis
// (leader kills, pauses) for N minutes (default 1), heals, checks the history, prints a summary; exits 0 when
// linearizable, 1 on a violation, 2 on "unknown", 3 on an error.
// With --partition (root only, `ip netns` usable) the masters run in network namespaces made for the run and
// leader partitions join the faults: this process sets the namespaces up, re-runs itself inside the client
// namespace (--inside-netns), and deletes them afterwards whatever happens.
// --serializable-reads makes gets member-local (possibly stale): a negative control that the checker should fail.
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { runJepsen, summarize } from "./jepsen.js";
import { Netns, netnsAvailable } from "./netns.js";

const OPTIONS = {
  minutes: { type: "string", default: "1" },
  clients: { type: "string", default: "6" },
  keys: { type: "string", default: "3" },
  keep: { type: "boolean", default: false },
  partition: { type: "boolean", default: false },
  "serializable-reads": { type: "boolean", default: false },
  "inside-netns": { type: "string" },
} as const;

async function run(values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"]): Promise<number> {
  const minutes = Number(values.minutes);
  if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, not ${values.minutes}`);
  const prefix = values["inside-netns"];
  const report = await runJepsen({
    durationMs: minutes * 60_000,
    clients: Number(values.clients),
    keys: Number(values.keys),
    keep: values.keep,
    serializableReads: values["serializable-reads"],
    netns: prefix ? new Netns(prefix) : undefined,
    log: (l) => process.stdout.write(`${new Date().toISOString()} ${l}\n`),
  });
  process.stdout.write(`${summarize(report)}\n`);
  if (values.keep) process.stdout.write(`data and history kept in ${report.dir}\n`);
  return report.check.ok === true ? 0 : report.check.ok === false ? 1 : 2;
}

/** Sets up the namespaces, runs this program again inside the client namespace, and always tears them down. */
async function runInNetns(argv: string[]): Promise<number> {
  const netns = new Netns();
  const cleanup = () => netns.teardown();
  process.once("SIGINT", cleanup).once("SIGTERM", cleanup);
  try {
    netns.setup();
    const args = ["netns", "exec", netns.client, process.execPath, process.argv[1], ...argv.filter((a) => a !== "--partition"), "--inside-netns", netns.prefix];
    const child = spawn("ip", args, { stdio: "inherit" });
    return await new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 3)));
  } finally {
    cleanup();
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const { values } = parseArgs({ args: argv, options: OPTIONS });
  if (values.partition && !values["inside-netns"]) {
    if (netnsAvailable()) return runInNetns(argv);
    process.stdout.write("--partition needs root and `ip netns`: running with kills and pauses only\n");
  }
  return run(values);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(3);
  },
);
