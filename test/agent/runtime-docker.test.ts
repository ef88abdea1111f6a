// DockerRuntime against a real dockerd (run through ../shared/ci/in-netns.sh). Every container carries this file's
// own node name, so the tests neither see nor disturb other agents sharing the daemon, and afterAll removes them.
import { randomBytes, randomUUID } from "node:crypto";
import { PassThrough } from "node:stream";
import Dockerode from "dockerode";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { DockerRuntime, PORTS_LABEL } from "../../src/agent/runtime/docker.js";
import { ensureBusyboxImage } from "../../src/agent/runtime/busybox-image.js";
import {
  ATTEMPT_LABEL,
  CONTAINER_LABEL,
  MANAGED_LABEL,
  NAMESPACE_LABEL,
  NODE_LABEL,
  POD_NAME_LABEL,
  POD_UID_LABEL,
  RuntimeError,
  SPEC_HASH_LABEL,
  type ContainerSpec,
  type LogChunk,
  type Runtime,
  type RuntimeContainer,
} from "../../src/agent/runtime/runtime.js";
import { requireDocker } from "../support/docker.js";

const docker = await requireDocker();
const IMAGE = "flotilla/busybox:latest";
const NODE = `test-docker-${randomBytes(4).toString("hex")}`;

function daemon(): Dockerode {
  if (docker === undefined) throw new Error("no dockerd");
  return docker;
}

function containerSpec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    podUid: randomUUID(),
    podName: `pod-${randomBytes(3).toString("hex")}`,
    namespace: "default",
    containerName: "main",
    specHash: "hash-1",
    attempt: 0,
    image: IMAGE,
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
    await new Promise((resolve) => setTimeout(resolve, 100));
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

describe.skipIf(docker === undefined)("DockerRuntime against a real dockerd", { timeout: 60_000 }, () => {
  let runtime: DockerRuntime;

  beforeAll(async () => {
    await ensureBusyboxImage(daemon(), IMAGE);
    runtime = new DockerRuntime({ nodeName: NODE, docker: daemon() });
  }, 60_000);

  afterAll(async () => {
    if (runtime === undefined) return;
    for (const container of await runtime.list()) await runtime.remove(container.id);
    await runtime.close();
  }, 60_000);

  it("reports the daemon's version", async () => {
    expect(await runtime.version()).toMatch(/^docker:\/\/\d+\.\d+/);
  });

  it("serves HTTP from a busybox httpd on a host port docker picked, with labels, init and port env", async () => {
    const spec = shell("echo hello-flotilla > /www/index.html && exec httpd -f -p $PORT -h /www", {
      ports: [{ name: "http", containerPort: 8080, hostPort: 0, hostIp: "127.0.0.1", protocol: "TCP" }],
    });
    const started = await runtime.start(spec);

    expect(started.state).toBe("running");
    expect(started.startedAt).toBeDefined();
    const [port] = started.ports;
    expect(port).toMatchObject({ name: "http", containerPort: 8080, hostIp: "127.0.0.1", protocol: "TCP" });
    expect(port.hostPort).toBeGreaterThan(0);
    const body = await waitFor("httpd to answer", async () => {
      const response = await fetch(`http://127.0.0.1:${port.hostPort}/`);
      return response.ok ? response.text() : undefined;
    });
    expect(body).toBe("hello-flotilla\n");

    const info = await daemon().getContainer(started.id).inspect();
    expect(info.Name).toBe(`/flotilla_default_${spec.podName}_main_0`);
    expect(info.Config.Hostname).toBe(spec.podName);
    expect(info.Config.Labels).toMatchObject({
      [MANAGED_LABEL]: "true",
      [NODE_LABEL]: NODE,
      [POD_UID_LABEL]: spec.podUid,
      [POD_NAME_LABEL]: spec.podName,
      [NAMESPACE_LABEL]: "default",
      [CONTAINER_LABEL]: "main",
      [SPEC_HASH_LABEL]: "hash-1",
      [ATTEMPT_LABEL]: "0",
    });
    expect(JSON.parse(info.Config.Labels[PORTS_LABEL])).toEqual(spec.ports);
    expect(info.Config.Env).toEqual(expect.arrayContaining(["HOST=0.0.0.0", "PORT=8080", "PORT_HTTP=8080"]));
    expect(info.HostConfig.Init).toBe(true);
    expect(info.HostConfig.RestartPolicy?.Name).toBe("no");
  });

  it("lets a user's env override the port variables", async () => {
    const started = await runtime.start(
      shell("echo $PORT", {
        env: { PORT: "9999" },
        ports: [{ name: "http", containerPort: 8080, hostPort: 0, hostIp: "127.0.0.1", protocol: "TCP" }],
      }),
    );
    await waitExited(runtime, started.id);
    expect((await collect(runtime.logs(started.id, { follow: false, tailLines: 0 }))).stdout).toBe("9999\n");
  });

  it("lists its containers, and a fresh instance for the same node finds them too, but not one for another node", async () => {
    const started = await runtime.start(shell("exec sleep 1000"));

    expect((await find(runtime, started.id))?.state).toBe("running");
    const restarted = new DockerRuntime({ nodeName: NODE, docker: daemon() });
    expect(await find(restarted, started.id)).toMatchObject({
      id: started.id,
      podUid: started.podUid,
      podName: started.podName,
      containerName: "main",
      specHash: "hash-1",
      attempt: 0,
      state: "running",
    });
    const otherNode = new DockerRuntime({ nodeName: `${NODE}-other`, docker: daemon() });
    expect(await find(otherNode, started.id)).toBeUndefined();

    await restarted.stop(started.id, 10);
    expect((await find(runtime, started.id))?.state).toBe("exited");
  });

  it("stops a shell that ignores SIGTERM as PID 1 would, because init forwards the signal", async () => {
    const started = await runtime.start(shell("sleep 1000; echo never"));

    await runtime.stop(started.id, 30);

    const stopped = await find(runtime, started.id);
    expect(stopped?.state).toBe("exited");
    expect(stopped?.exitCode).toBe(143);
    expect(stopped?.reason).toBe("Error");
    await runtime.stop(started.id, 30);
  });

  it("reports exit codes, reasons and times", async () => {
    const failed = await runtime.start(shell("exit 3"));
    const succeeded = await runtime.start(shell("true"));

    expect(await waitExited(runtime, failed.id)).toMatchObject({ exitCode: 3, reason: "Error" });
    const completed = await waitExited(runtime, succeeded.id);
    expect(completed).toMatchObject({ exitCode: 0, reason: "Completed" });
    expect(Date.parse(completed.startedAt ?? "")).toBeLessThanOrEqual(Date.parse(completed.finishedAt ?? ""));
  });

  it("runs args as the image's cmd when there is no command, and command as the entrypoint otherwise", async () => {
    const argsOnly = await runtime.start(containerSpec({ args: ["echo", "from", "args"] }));
    const both = await runtime.start(containerSpec({ command: ["echo"], args: ["from", "command"] }));

    await waitExited(runtime, argsOnly.id);
    await waitExited(runtime, both.id);
    expect((await collect(runtime.logs(argsOnly.id, { follow: false, tailLines: 0 }))).stdout).toBe("from args\n");
    expect((await collect(runtime.logs(both.id, { follow: false, tailLines: 0 }))).stdout).toBe("from command\n");
  });

  it("reads logs of an exited container split into stdout and stderr, and their tail", async () => {
    const split = await runtime.start(shell("echo out; echo err >&2; echo last"));
    // Only stdout: docker orders lines across the two streams by when it read them, not by when they were written.
    const lines = await runtime.start(shell("echo a; echo b; echo c"));
    await waitExited(runtime, split.id);
    await waitExited(runtime, lines.id);

    expect(await collect(runtime.logs(split.id, { follow: false, tailLines: 0 }))).toEqual({
      stdout: "out\nlast\n",
      stderr: "err\n",
    });
    expect((await collect(runtime.logs(lines.id, { follow: false, tailLines: 2 }))).stdout).toBe("b\nc\n");
    expect((await collect(runtime.logs(lines.id, { follow: true, tailLines: 1 }))).stdout).toBe("c\n");
  });

  it("follows logs until the container exits", async () => {
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

  it("puts cpu and memory limits into the host config", async () => {
    const started = await runtime.start(
      shell("exec sleep 1000", { cpuLimitMillis: 500, memoryLimitBytes: 64 * 1024 * 1024 }),
    );

    const info = await daemon().getContainer(started.id).inspect();
    expect(info.HostConfig.NanoCpus).toBe(500_000_000);
    expect(info.HostConfig.Memory).toBe(64 * 1024 * 1024);
    await runtime.stop(started.id, 10);
  });

  it("reports OOMKilled when a container outgrows its memory limit", async () => {
    const hog = 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived ${#x}';
    const started = await runtime.start(shell(hog, { memoryLimitBytes: 16 * 1024 * 1024 }));

    expect(await waitExited(runtime, started.id)).toMatchObject({ exitCode: 137, reason: "OOMKilled" });
  });

  it("fails with RunContainerError when the host port is taken, and leaves no container behind", async () => {
    const ports = [{ name: "http", containerPort: 8080, hostPort: 0, hostIp: "127.0.0.1", protocol: "TCP" as const }];
    const first = await runtime.start(shell("exec httpd -f -p 8080", { ports }));
    const taken = first.ports[0].hostPort;
    const second = shell("exec httpd -f -p 8080", { ports: [{ ...ports[0], hostPort: taken }] });

    const failure = await runtime.start(second).catch((err: unknown) => err);

    expect(failure).toBeInstanceOf(RuntimeError);
    expect(failure).toMatchObject({ reason: "RunContainerError" });
    expect(String(failure)).toMatch(/already allocated|address already in use/);
    expect((await runtime.list()).filter((container) => container.podUid === second.podUid)).toEqual([]);
  });

  it("fails with ErrImageNeverPull for a missing image under Never, and ErrImagePull when the pull fails", async () => {
    const never = runtime.start(containerSpec({ image: "flotilla/absent:1", imagePullPolicy: "Never" }));
    // A registry on a closed local port fails at once, without leaving the namespace.
    const pull = runtime.start(containerSpec({ image: "127.0.0.1:1/flotilla/absent:1" }));

    await expect(never).rejects.toMatchObject({ name: "RuntimeError", reason: "ErrImageNeverPull" });
    await expect(pull).rejects.toMatchObject({ name: "RuntimeError", reason: "ErrImagePull" });
  });

  it("watch calls back on container starts and exits until unsubscribed", async () => {
    let calls = 0;
    const unsubscribe = runtime.watch(() => calls++);
    // The subscription is in place once the daemon has seen our events request; a start proves that.
    await waitFor("the first event", async () => {
      const probe = await runtime.start(shell("true"));
      await waitExited(runtime, probe.id);
      return calls > 0 ? true : undefined;
    });
    unsubscribe();
    const afterUnsubscribe = calls;

    const late = await runtime.start(shell("true"));
    await waitExited(runtime, late.id);

    expect(calls).toBe(afterUnsubscribe);
  });

  it("watch shares one event stream between watchers and reconnects it when it ends", async () => {
    const client = new Dockerode();
    const dropped = new PassThrough();
    const getEvents = vi.spyOn(client, "getEvents").mockResolvedValueOnce(dropped);
    const watcher = new DockerRuntime({ nodeName: NODE, docker: client });
    const calls = [0, 0];
    const unsubscribers = [watcher.watch(() => calls[0]++), watcher.watch(() => calls[1]++)];
    await waitFor("the subscription", async () => (getEvents.mock.calls.length === 1 ? true : undefined));

    dropped.end();

    // After a reconnect every watcher hears of it, since events may have been missed meanwhile.
    await waitFor("the reconnect", async () => (calls[0] > 0 && calls[1] > 0 ? true : undefined));
    expect(getEvents).toHaveBeenCalledTimes(2);
    for (const unsubscribe of unsubscribers) unsubscribe();
    await watcher.close();
  });

  it("builds the busybox image from the host's static busybox, with applets, /www, /tmp and /bin/sh as cmd", async () => {
    const tag = `flotilla/busybox-test:${randomBytes(4).toString("hex")}`;
    try {
      expect(await ensureBusyboxImage(daemon(), tag)).toBe(tag);
      expect((await daemon().getImage(tag).inspect()).Config.Cmd).toEqual(["/bin/sh"]);
      const started = await runtime.start(
        shell("test -d /www && test -w /tmp && which httpd wget nc && grep ^root: /etc/passwd", { image: tag }),
      );
      expect(await waitExited(runtime, started.id)).toMatchObject({ exitCode: 0 });
      expect(await collect(runtime.logs(started.id, { follow: false, tailLines: 0 }))).toEqual({
        stdout: "/bin/httpd\n/bin/wget\n/bin/nc\nroot:x:0:0:root:/root:/bin/sh\n",
        stderr: "",
      });
      await runtime.remove(started.id);
      expect(await ensureBusyboxImage(daemon(), tag)).toBe(tag);
    } finally {
      await daemon().getImage(tag).remove({ force: true });
    }
  });

  it("execs a command in a running container, with the container's env, and answers its exit code", async () => {
    const started = await runtime.start(shell("exec sleep 1000", { env: { GREETING: "hi" } }));

    expect(await runtime.exec(started.id, ["sh", "-c", 'test "$GREETING" = hi && exit 7'], 10_000)).toBe(7);
    expect(await runtime.exec(started.id, ["test", "-f", "/no/such/file"], 10_000)).toBe(1);
    expect(await runtime.exec(started.id, ["sh", "-c", "echo output is drained; true"], 10_000)).toBe(0);
    await expect(runtime.exec(started.id, ["sleep", "30"], 300)).rejects.toMatchObject({ name: "RuntimeError", reason: "ExecTimeout" });
    expect((await find(runtime, started.id))?.state).toBe("running");

    await runtime.stop(started.id, 10);
    await expect(runtime.exec(started.id, ["true"], 10_000)).rejects.toMatchObject({ name: "RuntimeError", reason: "ContainerNotRunning" });
    await expect(runtime.exec("0".repeat(64), ["true"], 10_000)).rejects.toMatchObject({ name: "RuntimeError", reason: "NotFound" });
  });

  it("treats stopping and removing a missing container as done", async () => {
    await runtime.stop("0".repeat(64), 1);
    await runtime.remove("0".repeat(64));
  });
});
