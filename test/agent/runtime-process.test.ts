// ProcessRuntime with real host processes. A second ProcessRuntime on the same stateDir stands in for an agent that
// restarted. afterAll kills and removes every container, then the state directory.
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync, readlinkSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRuntime } from "../../src/agent/runtime/index.js";
import { ProcessRuntime } from "../../src/agent/runtime/process.js";
import {
  RuntimeError,
  type ContainerSpec,
  type LogChunk,
  type Runtime,
  type RuntimeContainer,
} from "../../src/agent/runtime/runtime.js";

const NODE = "test-process";

function containerSpec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    podUid: randomUUID(),
    podName: `pod-${randomBytes(3).toString("hex")}`,
    namespace: "default",
    containerName: "main",
    specHash: "hash-1",
    attempt: 0,
    image: "ignored",
    command: [],
    args: [],
    env: {},
    workingDir: "",
    ports: [],
    imagePullPolicy: "IfNotPresent",
    ...overrides,
  };
}

function shell(script: string, overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return containerSpec({ command: ["sh", "-c", script], ...overrides });
}

function localPort(name: string, hostPort = 0) {
  return { name, containerPort: 8080, hostPort, hostIp: "127.0.0.1", protocol: "TCP" as const };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${String(lastError ?? "")}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function find(runtime: Runtime, id: string): Promise<RuntimeContainer | undefined> {
  return (await runtime.list()).find((container) => container.id === id);
}

async function waitExited(runtime: Runtime, id: string): Promise<RuntimeContainer> {
  return waitFor(`${id} to exit`, async () => {
    const container = await find(runtime, id);
    return container?.state === "exited" ? container : undefined;
  });
}

async function collect(chunks: AsyncIterable<LogChunk>): Promise<{ stdout: string; stderr: string }> {
  const out = { stdout: "", stderr: "" };
  for await (const chunk of chunks) out[chunk.stream] += chunk.data.toString();
  return out;
}

async function stdoutOf(runtime: Runtime, id: string): Promise<string> {
  return (await collect(runtime.logs(id, { follow: false, tailLines: 0 }))).stdout;
}

/** The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session, ... */
function procStatFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** False once the process has exited, even while it waits as a zombie for its parent to reap it. */
function isRunningPid(pid: number): boolean {
  try {
    return !["Z", "X"].includes(procStatFields(pid)[0]);
  } catch {
    return false;
  }
}

describe("ProcessRuntime with real processes", { timeout: 30_000 }, () => {
  let stateDir: string;
  let runtime: ProcessRuntime;

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "flotilla-process-runtime-"));
    runtime = new ProcessRuntime({ nodeName: NODE, stateDir });
  });

  afterAll(async () => {
    for (const container of await runtime.list()) await runtime.remove(container.id);
    await runtime.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("reports its version", async () => {
    expect(await runtime.version()).toBe("process");
  });

  it("is what createRuntime makes for kind process, which needs a stateDir", () => {
    expect(createRuntime("process", { nodeName: NODE, stateDir })).toBeInstanceOf(ProcessRuntime);
    expect(() => createRuntime("process", { nodeName: NODE })).toThrow(/stateDir/);
  });

  it("runs a command to its exit code and keeps stdout and stderr apart", async () => {
    const started = await runtime.start(shell("echo hi; echo err >&2; exit 3"));

    const exited = await waitExited(runtime, started.id);

    expect(exited).toMatchObject({ podUid: started.podUid, containerName: "main", exitCode: 3, reason: "Error" });
    expect(exited.startedAt).toBeDefined();
    expect(exited.finishedAt).toBeDefined();
    expect(await collect(runtime.logs(started.id, { follow: false, tailLines: 0 }))).toEqual({
      stdout: "hi\n",
      stderr: "err\n",
    });
  });

  it("keeps the spec, logs, pid and exit code in the container's directory", async () => {
    const started = await runtime.start(shell("true"));
    await waitExited(runtime, started.id);
    const dir = join(stateDir, started.id);

    const record = JSON.parse(await readFile(join(dir, "spec.json"), "utf8"));
    expect(record.spec.command).toEqual(["sh", "-c", "true"]);
    expect(await readFile(join(dir, "exit-code"), "utf8")).toBe("0\n");
    expect(await readFile(join(dir, "pid"), "utf8")).toMatch(/^\d+ \d+ \S+\n$/);
    expect((await find(runtime, started.id))?.reason).toBe("Completed");
  });

  it("refuses a container without a command", async () => {
    const failure = await runtime.start(containerSpec({ args: ["echo", "hi"] })).catch((err: unknown) => err);

    expect(failure).toBeInstanceOf(RuntimeError);
    expect(failure).toMatchObject({ reason: "CreateContainerError" });
    expect(String(failure)).toMatch(/needs a command/);
  });

  it("hands the process HOST, PORT, PORT_<NAME> and HOSTNAME for the host port it assigned", async () => {
    const spec = shell('echo "$PORT $HOST $PORT_WEB_UI $HOSTNAME"', { ports: [localPort("web-ui")] });
    const started = await runtime.start(spec);
    await waitExited(runtime, started.id);

    const [port] = started.ports;
    expect(port).toMatchObject({ name: "web-ui", containerPort: 8080, hostIp: "127.0.0.1", protocol: "TCP" });
    expect(port.hostPort).toBeGreaterThanOrEqual(20000);
    expect(port.hostPort).toBeLessThanOrEqual(29999);
    expect(await stdoutOf(runtime, started.id)).toBe(`${port.hostPort} 127.0.0.1 ${port.hostPort} ${spec.podName}\n`);
  });

  it("serves HTTP from a node one-liner on the reported port", async () => {
    const server = "require('http').createServer((q, s) => s.end('hello from ' + process.env.HOSTNAME))" +
      ".listen(+process.env.PORT, process.env.HOST)";
    const spec = containerSpec({ command: [process.execPath, "-e", server], ports: [localPort("http")] });
    const started = await runtime.start(spec);

    const body = await waitFor("the server to answer", async () => {
      const response = await fetch(`http://127.0.0.1:${started.ports[0].hostPort}/`);
      return response.text();
    });

    expect(body).toBe(`hello from ${spec.podName}`);
    await runtime.stop(started.id, 10);
    expect((await find(runtime, started.id))?.state).toBe("exited");
  });

  it("lets a restarted agent adopt a running process and stop it", async () => {
    const started = await runtime.start(shell("exec sleep 1000"));
    const pid = Number((await readFile(join(stateDir, started.id, "pid"), "utf8")).split(" ")[0]);

    // What lets it outlive the agent: its own session and group, and output going to files rather than pipes.
    const [, , group, session] = procStatFields(pid);
    expect([Number(group), Number(session)]).toEqual([pid, pid]);
    expect(readlinkSync(`/proc/${pid}/fd/1`)).toBe(join(stateDir, started.id, "stdout.log"));
    expect(readlinkSync(`/proc/${pid}/fd/2`)).toBe(join(stateDir, started.id, "stderr.log"));

    const restarted = new ProcessRuntime({ nodeName: NODE, stateDir });
    const adopted = await find(restarted, started.id);
    expect(adopted).toMatchObject({ id: started.id, podUid: started.podUid, state: "running" });
    expect(adopted?.startedAt).toBe(started.startedAt);
    expect(await find(new ProcessRuntime({ nodeName: "another-node", stateDir }), started.id)).toBeUndefined();

    await restarted.stop(started.id, 10);

    expect(await find(restarted, started.id)).toMatchObject({ state: "exited", exitCode: 143, reason: "Error" });
    expect(isRunningPid(pid)).toBe(false);
    await restarted.close();
  });

  it("records the exit code even when no agent is running as the process exits", async () => {
    const gone = new ProcessRuntime({ nodeName: NODE, stateDir });
    const started = await gone.start(shell("sleep 0.3; exit 5"));
    await gone.close();

    const later = new ProcessRuntime({ nodeName: NODE, stateDir });
    expect(await waitExited(later, started.id)).toMatchObject({ exitCode: 5, reason: "Error" });
  });

  it("does not take a recycled pid for the container it once was", async () => {
    const started = await runtime.start(shell("true"));
    await waitExited(runtime, started.id);
    const dir = join(stateDir, started.id);
    const [, , startedAt] = (await readFile(join(dir, "pid"), "utf8")).trim().split(" ");
    // Our own pid is certainly alive, but it did not start when the container did.
    await writeFile(join(dir, "pid"), `${process.pid} 1 ${startedAt}\n`);
    await rm(join(dir, "exit-code"));

    expect(await find(runtime, started.id)).toMatchObject({ state: "exited", exitCode: 137 });
  });

  it("kills what outlives SIGTERM once the grace period is over", async () => {
    const started = await runtime.start(shell("trap '' TERM; echo ready; while :; do sleep 0.1; done"));
    await waitFor("the trap", async () => ((await stdoutOf(runtime, started.id)) === "ready\n" ? true : undefined));

    await runtime.stop(started.id, 0.2);

    expect(await find(runtime, started.id)).toMatchObject({ state: "exited", exitCode: 137 });
  });

  it("fails with RunContainerError when a fixed host port is taken", async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const address = holder.address();
    const taken = typeof address === "object" && address !== null ? address.port : 0;
    try {
      const failure = await runtime.start(shell("true", { ports: [localPort("http", taken)] })).catch((e: unknown) => e);
      expect(failure).toMatchObject({ name: "RuntimeError", reason: "RunContainerError" });
      expect(String(failure)).toMatch(/already allocated/);
    } finally {
      holder.close();
    }
  });

  it("runs in the working directory, or else in its own state directory", async () => {
    const elsewhere = await runtime.start(shell("pwd", { workingDir: stateDir }));
    const own = await runtime.start(shell("pwd"));
    await waitExited(runtime, elsewhere.id);
    await waitExited(runtime, own.id);

    expect(await stdoutOf(runtime, elsewhere.id)).toBe(`${stateDir}\n`);
    expect(await stdoutOf(runtime, own.id)).toBe(`${join(stateDir, own.id)}\n`);
  });

  it("reads the tail of the logs", async () => {
    const started = await runtime.start(shell("echo a; echo b; echo c"));
    await waitExited(runtime, started.id);

    expect((await collect(runtime.logs(started.id, { follow: false, tailLines: 2 }))).stdout).toBe("b\nc\n");
    expect((await collect(runtime.logs(started.id, { follow: true, tailLines: 5 }))).stdout).toBe("a\nb\nc\n");
  });

  it("follows logs until the process exits and the files are drained", async () => {
    const started = await runtime.start(shell("for i in 1 2 3; do echo line$i; sleep 0.2; done; echo done >&2"));

    const logs = await collect(runtime.logs(started.id, { follow: true, tailLines: 0 }));

    expect(logs).toEqual({ stdout: "line1\nline2\nline3\n", stderr: "done\n" });
  });

  it("stops following logs when the signal aborts", async () => {
    const started = await runtime.start(shell("echo first; exec sleep 1000"));
    const controller = new AbortController();
    const seen: string[] = [];

    for await (const chunk of runtime.logs(started.id, { follow: true, tailLines: 0, signal: controller.signal })) {
      seen.push(chunk.data.toString());
      controller.abort();
    }

    expect(seen).toEqual(["first\n"]);
    expect((await find(runtime, started.id))?.state).toBe("running");
    await runtime.stop(started.id, 10);
  });

  it("watch calls back when a process exits, until unsubscribed", async () => {
    let calls = 0;
    const unsubscribe = runtime.watch(() => calls++);
    const started = await runtime.start(shell("sleep 0.2"));
    const callsAtStart = calls;

    await waitExited(runtime, started.id);
    await waitFor("the exit to be reported", async () => (calls > callsAtStart ? true : undefined));
    unsubscribe();
    const afterUnsubscribe = calls;
    const late = await runtime.start(shell("true"));
    await waitExited(runtime, late.id);

    expect(calls).toBe(afterUnsubscribe);
  });

  it("watch notices a process another instance started and that exited on its own", async () => {
    const other = new ProcessRuntime({ nodeName: NODE, stateDir });
    let calls = 0;
    const unsubscribe = runtime.watch(() => calls++);

    const started = await other.start(shell("sleep 1"));
    await other.close();

    await waitFor("the poll to notice", async () => (calls > 0 ? true : undefined));
    await waitExited(runtime, started.id);
    unsubscribe();
  });

  it("execs a command as a host process with the container's environment and directory, answering its exit code", async () => {
    const started = await runtime.start(shell("exec sleep 1000", { env: { GREETING: "hi" }, ports: [localPort("http")] }));
    const hostPort = started.ports[0].hostPort;

    const checks = `test "$GREETING" = hi && test "$PORT_HTTP" = ${hostPort} && test "$(pwd)" = ${join(stateDir, started.id)} && exit 7`;
    expect(await runtime.exec(started.id, ["sh", "-c", checks], 5000)).toBe(7);
    expect(await runtime.exec(started.id, ["true"], 5000)).toBe(0);
    expect(await runtime.exec(started.id, ["sh", "-c", "kill -TERM $$"], 5000)).toBe(143);
    expect((await find(runtime, started.id))?.state).toBe("running");
    await runtime.stop(started.id, 1);
  });

  it("kills an exec that overruns its timeout, with what it started, and fails it", async () => {
    const started = await runtime.start(shell("exec sleep 1000"));
    const pidFile = join(stateDir, "exec-pids");

    const failure = await runtime.exec(started.id, ["sh", "-c", `sleep 1000 & echo $$ $! > ${pidFile}; wait`], 300).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(RuntimeError);
    expect(failure).toMatchObject({ reason: "ExecTimeout" });
    const pids = (await readFile(pidFile, "utf8")).trim().split(" ").map(Number);
    await waitFor("the exec's processes to die", async () => (pids.some(isRunningPid) ? undefined : true));
    expect((await find(runtime, started.id))?.state).toBe("running");
    await runtime.stop(started.id, 1);
  });

  it("refuses to exec in a container that is not running or unknown, or a command that does not exist", async () => {
    const done = await runtime.start(shell("true"));
    await waitExited(runtime, done.id);
    const running = await runtime.start(shell("exec sleep 1000"));

    await expect(runtime.exec(done.id, ["true"], 1000)).rejects.toMatchObject({ name: "RuntimeError", reason: "ContainerNotRunning" });
    await expect(runtime.exec("no-such-container", ["true"], 1000)).rejects.toMatchObject({ name: "RuntimeError", reason: "NotFound" });
    await expect(runtime.exec("../escape", ["true"], 1000)).rejects.toMatchObject({ reason: "NotFound" });
    await expect(runtime.exec(running.id, ["/no/such/binary"], 1000)).rejects.toMatchObject({ name: "RuntimeError", reason: "ExecError" });
    await runtime.stop(running.id, 1);
  });

  it("removes a container's directory, killing it first if it still runs", async () => {
    const started = await runtime.start(shell("exec sleep 1000"));
    const pid = Number((await readFile(join(stateDir, started.id, "pid"), "utf8")).split(" ")[0]);

    await runtime.remove(started.id);

    expect(await find(runtime, started.id)).toBeUndefined();
    await expect(readFile(join(stateDir, started.id, "spec.json"))).rejects.toThrow();
    expect(isRunningPid(pid)).toBe(false);
    await runtime.remove(started.id);
    await runtime.stop(started.id, 1);
  });
});
