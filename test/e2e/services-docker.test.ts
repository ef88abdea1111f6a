// Services with real containers (in the test run's network namespace, with its own dockerd): a real master and an
// agent with the Docker driver, whose node address is the Docker bridge's gateway so that containers reach it, run
// once with each proxy mode (userspace, then nftables) and the same assertions. Pods are busybox httpd containers
// answering with their pod name, with a readiness probe on a file their command creates.
// Shows, for each mode:
// - a 3-replica Deployment behind a NodePort Service answers on every replica through the VIP and the NodePort from
//   the node, and from inside another container by VIP, by NodePort and by the service's short DNS name;
// - a pod whose readiness probe starts failing, and a deleted pod, stop receiving requests once the endpoints
//   change, while requests running all along never fail; with nftables (no retry on another backend), neither do
//   they through 5 deletions one after another (a deleted pod's containers stop only once the proxy dropped it);
// - scaled to 6, all 6 receive traffic;
// - how the mode holds the VIP: nftables DNATs it (a map element and rules to the containers, no socket);
//   userspace listens on it (on the flotilla0 interface);
// - the ingress routes by host and path to the right replica set, answers 404 and 503 plainly, and the VIP of a
//   service without ready endpoints fails at once rather than hanging;
// - the agent's stop leaves no table, no interface and no listener behind, so the next mode starts clean.
import { spawnSync } from "node:child_process";
import { freePort } from "../support/ports.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Agent } from "../../src/agent/agent.js";
import { ensureBusyboxImage } from "../../src/agent/runtime/busybox-image.js";
import { MANAGED_LABEL, NODE_LABEL, POD_NAME_LABEL } from "../../src/agent/runtime/runtime.js";
import { Ingress } from "../../src/gen/flotilla/v1/ingress.js";
import { Pod } from "../../src/gen/flotilla/v1/pod.js";
import { Endpoints, Service } from "../../src/gen/flotilla/v1/service.js";
import { requireDocker } from "../support/docker.js";
import { allAnswer, applyDeployment, scaleDeployment, startAgent } from "../support/cluster.js";
import { getOnNewConnection } from "../support/http.js";
import { eventually, startTestMaster, type TestMaster } from "../support/master.js";

const IMAGE = "flotilla/busybox:latest";
const SERVICE_CIDR = "10.96.0.0/16";
const docker = await requireDocker();
const isRoot = process.getuid?.() === 0;
const get = getOnNewConnection;

/** An httpd Deployment: each pod answers / and /api/ with its name, and is ready while /ready.html exists. */
const httpd = (name: string, replicas: number) => ({
  metadata: { name },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: {
        containers: [{
          name: "httpd",
          image: IMAGE,
          command: ["/bin/sh", "-c", "mkdir -p /www/api && echo $FLOTILLA_POD_NAME | tee /www/index.html > /www/api/index.html && echo ok > /www/ready.html && exec httpd -f -p 8080 -h /www"],
          ports: [{ name: "http", containerPort: 8080 }],
          readinessProbe: { httpGet: { path: "/ready.html", port: "http" }, periodSeconds: 1, failureThreshold: 2 },
        }],
      },
    },
  },
});

function run(cmd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** n GETs, each on a new connection: the bodies with counts. Any failure or non-200 answer fails the call. */
async function spread(url: string, n: number, host?: string): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const { status, body } = await get(url, host);
    if (status !== 200) throw new Error(`${url}: ${status} ${body}`);
    seen.set(body, (seen.get(body) ?? 0) + 1);
  }
  return seen;
}

const names = (seen: Map<string, number>) => [...seen.keys()].sort();

/** How a request fails: the error's code (ECONNREFUSED, ECONNRESET), its message if it has none, or what answered. */
async function failureOf(url: string): Promise<string> {
  try {
    const r = await get(url);
    return `answered ${r.status}`;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}

interface LoadResult {
  failures: string[];
  /** Per request, in order: the body that answered, or "" for a failure. */
  answers: string[];
}

interface Load {
  /** Requests made so far. */
  count(): number;
  /** Resolves once `n` requests have been made in all. */
  reach(n: number): Promise<void>;
  /** Stops, and says what happened; `exhausted`: it hit its bound before being stopped. */
  stop(): Promise<LoadResult & { exhausted: boolean }>;
}

/**
 * GETs `urls` in turn, each on a new connection, with a short pause between, until stop() or MAX requests (the
 * bound). Every failure is recorded, never thrown.
 */
function keepRequesting(urls: string[]): Load {
  const MAX = 3000;
  let stopped = false;
  const result: LoadResult = { failures: [], answers: [] };
  const count = () => result.answers.length;
  const done = (async () => {
    while (!stopped && count() < MAX) {
      const url = urls[count() % urls.length]!;
      try {
        const { status, body } = await get(url);
        if (status !== 200) result.failures.push(`${url}: ${status} ${body}`);
        result.answers.push(status === 200 ? body : "");
      } catch (e) {
        result.failures.push(`${url}: ${(e as Error).message}`);
        result.answers.push("");
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    count,
    reach: (n) => eventually(() => count() >= Math.min(n, MAX), 60_000, `${n} requests`).then(() => undefined),
    async stop() {
      const exhausted = count() >= MAX;
      stopped = true;
      await done;
      return { ...result, exhausted };
    },
  };
}

/**
 * Runs `body` while keepRequesting(urls) runs, then checks that no request failed and that the load ran until it
 * was stopped (not cut short by its bound). Returns the answers in order.
 */
async function underLoad(urls: string[], body: (load: Load) => Promise<void>): Promise<string[]> {
  const load = keepRequesting(urls);
  let result: Awaited<ReturnType<typeof load.stop>>;
  try {
    await body(load);
  } finally {
    result = await load.stop();
  }
  expect(result.failures).toEqual([]);
  expect(result.exhausted).toBe(false);
  return result.answers;
}

/** Local addresses of listening sockets (`ss -Hl`), TCP and UDP, but Docker's (docker-proxy, its published ports). */
function listening(): string[] {
  return ["-Hltnp", "-Hlunp"].flatMap((flags) =>
    run("ss", [flags]).stdout.split("\n").filter((l) => l && !l.includes('"docker-proxy"')).map((l) => l.trim().split(/\s+/)[3] ?? ""),
  );
}

/** Docker's stream format for logs without a TTY: 8-byte frame headers (stream, size) before each chunk. */
function demux(raw: Buffer): string {
  let text = "";
  for (let off = 0; off + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(off + 4);
    text += raw.subarray(off + 8, off + 8 + size).toString("utf8");
    off += 8 + size;
  }
  return text;
}

// Root: the VIPs go on the agent's flotilla0 interface or into nftables, and cluster DNS listens on port 53.
describe.skipIf(!docker || (!isRoot && process.env.CI !== "true"))("services with Docker containers", () => {
  const d = docker!;
  let gateway = "";
  let routeAdded = false;

  /** What a stopped agent should have left behind on this node, and does not: empty when the node is clean. */
  function leftovers(): string[] {
    const found: string[] = [];
    if (run("nft", ["list", "table", "ip", "flotilla"]).code === 0) found.push("nftables table ip flotilla");
    if (run("ip", ["link", "show", "flotilla0"]).code === 0) found.push("interface flotilla0");
    // Apart from Docker's published ports (left out by listening()), anything on the node address or a VIP is ours.
    for (const a of listening()) if (a.startsWith(`${gateway}:`) || a.startsWith("10.96.")) found.push(`a listener on ${a}`);
    return found;
  }

  beforeAll(async () => {
    if (!isRoot) throw new Error("this test binds port 53 and manages flotilla0 and nftables: run it as root (CI does)");
    await ensureBusyboxImage(d, IMAGE);
    // The bridge's address on this side: what containers on the default network reach the node by.
    // (`ip`, not os.networkInterfaces(): that leaves out a bridge with no container attached yet, which is down.)
    const shown = run("ip", ["-j", "-4", "addr", "show", "dev", "docker0"]);
    gateway = shown.code === 0 ? ((JSON.parse(shown.stdout) as { addr_info?: { local: string }[] }[])[0]?.addr_info?.[0]?.local ?? "") : "";
    if (!gateway) throw new Error("no docker0 interface with an IPv4 address (is dockerd running in this namespace?)");
    // A node's processes need a route covering the service range for the nftables proxy (its DNAT happens after
    // routing); a real node's default route does, and this namespace has none. The userspace proxy's VIPs are
    // local addresses, which the local routing table puts first, so the route changes nothing for it.
    if (run("ip", ["route", "show", SERVICE_CIDR]).stdout.trim() === "") {
      const added = run("ip", ["route", "add", SERVICE_CIDR, "dev", "docker0"]);
      if (added.code !== 0) throw new Error(`ip route add ${SERVICE_CIDR}: ${added.stderr}`);
      routeAdded = true;
    }
  }, 120_000);

  afterAll(() => {
    if (routeAdded) run("ip", ["route", "del", SERVICE_CIDR, "dev", "docker0"]);
  });

  describe.each(["userspace", "nftables"] as const)("with the %s proxy", (mode) => {
    const NODE = `svc-docker-${mode}`;
    let t: TestMaster;
    let agent: Agent | undefined;
    let agentStopped = false;
    let ingressPort = 0;
    let vip = "";
    let nodePort = 0;
    let replicas: string[] = [];
    const viaVip = () => `http://${vip}/`;
    const viaNodePort = () => `http://${gateway}:${nodePort}/`;

    const containerOf = async (pod: string) => {
      const [c] = await d.listContainers({ filters: { label: [`${NODE_LABEL}=${NODE}`, `${POD_NAME_LABEL}=${pod}`] } });
      if (!c) throw new Error(`no running container for pod ${pod}`);
      return c;
    };
    const execIn = async (pod: string, script: string) => {
      const r = run("docker", ["exec", (await containerOf(pod)).Id, "/bin/sh", "-c", script]);
      if (r.code !== 0) throw new Error(`docker exec in ${pod}: ${script}: ${r.stderr}`);
    };
    /**
     * Whether this node's proxy has taken a service's VIP (port 80). Tests dial a VIP only after: a SYN sent before
     * goes out un-NATed and unanswered (the service range is routed to docker0), and in nftables mode its conntrack
     * entry (SYN_SENT, kept 120 s) would blackhole a later connection that reuses the same source port.
     */
    const proxyHas = (address: string) =>
      mode === "nftables"
        ? new RegExp(`${address.replace(/\./g, "\\.")} \\. tcp \\. 80\\b`).test(run("nft", ["list", "table", "ip", "flotilla"]).stdout)
        : listening().includes(`${address}:80`);
    const endpointsOf = (name: string) =>
      t.client.call<Endpoints>((s, md, o, cb) => s.endpoints.getEndpoints({ namespace: "default", name }, md, o, cb));
    const createService = (name: string, selector: Record<string, string>, type = "ClusterIP") =>
      t.client.call<Service>((s, md, o, cb) =>
        s.services.createService(Service.fromPartial({ metadata: { name }, spec: { selector, type, ports: [{ port: 80, targetPort: "http" }] } }), md, o, cb),
      );
    /** Runs a pod (restartPolicy Never) with a shell script on this node, and resolves with its output once it exits. */
    const runPod = async (name: string, script: string) => {
      await t.client.call((s, md, o, cb) =>
        s.pods.createPod(
          Pod.fromPartial({ metadata: { name }, spec: { restartPolicy: "Never", containers: [{ name, image: IMAGE, command: ["/bin/sh", "-c", script] }] } }),
          md,
          o,
          cb,
        ),
      );
      return eventually(async () => {
        const [c] = await d.listContainers({ all: true, filters: { label: [`${NODE_LABEL}=${NODE}`, `${POD_NAME_LABEL}=${name}`] } });
        if (!c || c.State !== "exited") return undefined;
        const container = d.getContainer(c.Id);
        return { inspect: await container.inspect(), text: demux((await container.logs({ stdout: true, stderr: true })) as unknown as Buffer) };
      }, 120_000, `pod ${name} to finish`);
    };

    /**
     * Under load on the VIP and the NodePort (no request may fail), runs `takeOut`, waits until the VIP stops
     * answering from `victim`, then checks that neither path reaches it any more, nor does any request of the load
     * made after that point. Returns what the VIP answered after the update.
     */
    const takenOutUnderLoad = async (victim: string, takeOut: () => Promise<void>) => {
      let updatedAt = Infinity;
      let vipAfter = new Map<string, number>();
      const answers = await underLoad([viaVip(), viaNodePort()], async (load) => {
        await takeOut();
        await eventually(async () => !(await spread(viaVip(), 20)).has(victim), 30_000, `${victim} to stop receiving requests`);
        updatedAt = load.count();
        vipAfter = await spread(viaVip(), 30);
        const nodePortAfter = await spread(viaNodePort(), 30);
        expect(vipAfter.has(victim)).toBe(false);
        expect(nodePortAfter.has(victim)).toBe(false);
        await load.reach(updatedAt + 30);
      });
      // The request in flight when the update was seen may have started before it; none after it reached the victim.
      expect(answers.slice(updatedAt + 1).filter((b) => b === victim)).toEqual([]);
      return vipAfter;
    };

    beforeAll(async () => {
      // The previous mode's agent must have cleaned up after itself: its table, interface and sockets are gone.
      const left = leftovers();
      if (left.length > 0) throw new Error(`the node is not clean before the ${mode} agent starts: ${left.join(", ")}`);
      t = await startTestMaster({ serviceCidr: SERVICE_CIDR, heartbeatIntervalSeconds: 1 });
      ingressPort = await freePort(gateway);
      agent = await startAgent(t, { driver: "docker", address: gateway, nodeName: NODE, network: { proxyMode: mode, dnsListen: `${gateway}:53`, ingressPort } });
    }, 120_000);

    afterAll(async () => {
      if (!agentStopped) await agent?.stop();
      for (const c of await d.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`] } })) {
        if (c.Labels[NODE_LABEL] === NODE) await d.getContainer(c.Id).remove({ force: true }).catch(() => {});
      }
      await t?.stop();
    }, 120_000);

    it("spreads requests over all 3 pods through the VIP and the NodePort, from the node and from a container (by VIP, NodePort and DNS name)", async () => {
      expect(agent!.network?.proxyMode).toBe(mode);
      await applyDeployment(t, httpd("web", 3));
      replicas = [...(await allAnswer(t, "app=web", 3, 90_000)).keys()].sort();
      const svc = await createService("web", { app: "web" }, "NodePort");
      vip = svc.spec!.clusterIp;
      nodePort = svc.spec!.ports[0]!.nodePort;
      expect(vip.startsWith("10.96.")).toBe(true);
      expect(nodePort).toBeGreaterThan(0);
      await eventually(() => proxyHas(vip), 30_000, "the node's proxy to take the VIP");

      // From the node (the pods become ready once their probe passes).
      const fromNode = await eventually(async () => {
        const seen = await spread(viaVip(), 30).catch(() => undefined);
        return seen?.size === 3 ? seen : undefined;
      }, 60_000, "all 3 replicas through the VIP from the node");
      expect(names(fromNode)).toEqual(replicas);
      const nodePortSeen = await eventually(async () => {
        const seen = await spread(viaNodePort(), 30);
        return seen.size === 3 ? seen : undefined;
      }, 30_000, "all 3 replicas through the NodePort from the node");
      expect(names(nodePortSeen)).toEqual(replicas);

      // From inside another container: the VIP, the NodePort on the node's address, and `web`, which resolves
      // through the search list the agent gives containers to the VIP.
      const script = [
        "nslookup web",
        `for target in vip=http://${vip}/ nodeport=http://${gateway}:${nodePort}/ dns=http://web/; do`,
        "  for i in $(seq 30); do",
        '    body=$(timeout 5 wget -qO- "${target#*=}" 2>/dev/null) || body=FAILED',
        '    echo "${target%%=*} $body"',
        "  done",
        "done",
      ].join("\n");
      const client = await runPod("client", script);
      expect(client.inspect.HostConfig.Dns).toEqual([gateway]);
      expect(client.inspect.HostConfig.DnsSearch).toEqual(["default.svc.flotilla.local", "svc.flotilla.local", "flotilla.local"]);
      expect(client.text).toContain(vip);
      for (const kind of ["vip", "nodeport", "dns"]) {
        const bodies = client.text.split("\n").filter((l) => l.startsWith(`${kind} `)).map((l) => l.slice(kind.length + 1).trim());
        expect(bodies, `${kind} from the client container`).toHaveLength(30);
        expect(bodies.filter((b) => !replicas.includes(b)), `${kind}: answers not from a replica`).toEqual([]);
        expect([...new Set(bodies)].sort(), `${kind}: replicas that answered the client container`).toEqual(replicas);
      }
    }, 300_000);

    it("stops sending to a pod whose readiness probe fails, without failing a request, and sends to it again once it passes", async () => {
      const victim = replicas[0]!;
      const vipAfter = await takenOutUnderLoad(victim, async () => {
        await execIn(victim, "rm /www/ready.html");
        await eventually(async () => {
          const ports = (await endpointsOf("web")).ports[0];
          return ports?.notReady.some((a) => a.pod === victim) && !ports.ready.some((a) => a.pod === victim);
        }, 30_000, `${victim} to turn not ready in the endpoints`);
      });
      expect(names(vipAfter)).toEqual(replicas.filter((r) => r !== victim));

      // Ready again: it is back in the rotation.
      await execIn(victim, "echo ok > /www/ready.html");
      const back = await eventually(async () => {
        const seen = await spread(viaVip(), 30);
        return seen.size === 3 ? seen : undefined;
      }, 30_000, `${victim} to receive requests again once ready`);
      expect(names(back)).toEqual(replicas);
    }, 180_000);

    it("stops sending to a deleted pod, without failing a request, and sends to its replacement", async () => {
      const victim = replicas[1]!;
      await takenOutUnderLoad(victim, async () => {
        await t.client.call((s, md, o, cb) => s.pods.deletePod({ namespace: "default", name: victim, resourceVersion: "" }, md, o, cb));
      });

      // The Deployment's replacement, under a new name, takes its share.
      const now = await eventually(async () => {
        const seen = await spread(viaVip(), 30);
        return seen.size === 3 ? seen : undefined;
      }, 90_000, "the replacement pod to receive requests");
      expect(now.has(victim)).toBe(false);
      const replacement = names(now).filter((n) => !replicas.includes(n));
      expect(replacement).toHaveLength(1);
      replicas = names(now);
    }, 180_000);

    if (mode === "nftables") {
      // The kernel DNATs each new connection at once, with no retry on another backend: a container stopped while
      // its rules are still in place refuses (or cuts) the connections sent to it meanwhile. The agent stops a
      // deleted pod's containers only once the proxy has dropped them, so this holds through any number of deletions.
      it("deletes 5 pods one after another under continuous load, without failing a request", async () => {
        await underLoad([viaVip(), viaNodePort()], async () => {
          for (let i = 0; i < 5; i++) {
            const victim = replicas[0]!;
            await t.client.call((s, md, o, cb) => s.pods.deletePod({ namespace: "default", name: victim, resourceVersion: "" }, md, o, cb));
            // Its container stops and goes while the load runs...
            await eventually(async () => {
              const left = await d.listContainers({ all: true, filters: { label: [`${NODE_LABEL}=${NODE}`, `${POD_NAME_LABEL}=${victim}`] } });
              return left.length === 0;
            }, 30_000, `${victim}'s container to be removed`);
            // ...and its replacement takes its share before the next deletion.
            const now = await eventually(async () => {
              const seen = await spread(viaVip(), 30).catch(() => undefined);
              return seen?.size === 3 && !seen.has(victim) ? seen : undefined;
            }, 90_000, `the replacement of ${victim} to receive requests`);
            replicas = names(now);
          }
        });
      }, 300_000);
    }

    it("spreads over all 6 pods after a scale-up", async () => {
      await scaleDeployment(t, "web", 6);
      const six = [...(await allAnswer(t, "app=web", 6, 90_000)).keys()].sort();
      const seen = await eventually(async () => {
        const s = await spread(viaVip(), 60);
        return s.size === 6 ? s : undefined;
      }, 60_000, "all 6 pods to receive traffic through the VIP");
      expect(names(seen)).toEqual(six);
      replicas = six;
    }, 180_000);

    if (mode === "nftables") {
      it("DNATs the VIP in nftables to the pods' containers, and holds no socket on it", async () => {
        const addresses = await Promise.all(
          replicas.map(async (pod) => `${Object.values((await containerOf(pod)).NetworkSettings.Networks)[0]!.IPAddress}:8080`),
        );
        const rules = await eventually(() => {
          const r = run("nft", ["list", "table", "ip", "flotilla"]);
          const targets = [...r.stdout.matchAll(/dnat to (\d+\.\d+\.\d+\.\d+:\d+)/g)].map((m) => m[1]!);
          return r.code === 0 && targets.length === 6 ? { text: r.stdout, targets } : undefined;
        }, 30_000, "6 backends in the nftables table");
        // This node's own pods are dialled at their containers' addresses, not at their published ports.
        expect(rules.targets.sort()).toEqual(addresses.sort());
        const map = /map service-ips \{[^}]*\}/.exec(rules.text)?.[0] ?? "";
        expect(map).toContain(`${vip} . tcp . 80 :`);
        const sockets = listening();
        expect(sockets).not.toContain(`${vip}:80`);
        expect(sockets).not.toContain(`${gateway}:${nodePort}`);
        expect(run("ip", ["link", "show", "flotilla0"]).code, "no VIP interface in nftables mode").not.toBe(0);
      });
    } else {
      it("holds the VIP on flotilla0 with a listener, and uses no nftables table", () => {
        expect(run("ip", ["-o", "addr", "show", "dev", "flotilla0"]).stdout).toContain(`${vip}/32`);
        const sockets = listening();
        expect(sockets).toContain(`${vip}:80`);
        expect(sockets).toContain(`${gateway}:${nodePort}`);
        expect(run("nft", ["list", "table", "ip", "flotilla"]).code).not.toBe(0);
      });
    }

    it("routes through the ingress by host and path to the right pods, with 404, 503, and a prompt failure on an empty service's VIP", async () => {
      await applyDeployment(t, httpd("api", 2));
      const apiPods = [...(await allAnswer(t, "app=api", 2, 90_000)).keys()].sort();
      await createService("api", { app: "api" });
      const empty = await createService("empty", { app: "nothing" });
      await t.client.call((s, md, o, cb) =>
        s.ingresses.createIngress(
          Ingress.fromPartial({
            metadata: { name: "site" },
            spec: {
              rules: [
                { host: "web.test", paths: [{ pathPrefix: "/", backend: { service: "web", port: "80" } }, { pathPrefix: "/empty", backend: { service: "empty", port: "80" } }] },
                { host: "api.test", paths: [{ pathPrefix: "/", backend: { service: "api", port: "80" } }] },
                { host: "", paths: [{ pathPrefix: "/api", backend: { service: "api", port: "80" } }] },
              ],
            },
          }),
          md,
          o,
          cb,
        ),
      );
      const base = `http://${gateway}:${ingressPort}`;
      // By host: web.test goes to web's pods (even for /api: a rule naming the host comes first), api.test to api's.
      const web = await eventually(async () => {
        const seen = await spread(`${base}/`, 30, "web.test").catch(() => undefined);
        return seen?.size === 6 ? seen : undefined;
      }, 30_000, "the ingress to route web.test to all of web's pods");
      expect(names(web)).toEqual(replicas);
      const apiByHost = await eventually(async () => {
        const seen = await spread(`${base}/`, 10, "api.test").catch(() => undefined);
        return seen?.size === 2 ? seen : undefined;
      }, 30_000, "the ingress to route api.test to both of api's pods");
      expect(names(apiByHost)).toEqual(apiPods);
      const webApiPath = await spread(`${base}/api/`, 10, "web.test");
      expect(names(webApiPath).every((n) => replicas.includes(n))).toBe(true);
      // By path, for any host.
      const apiByPath = await spread(`${base}/api/`, 10, "other.test");
      expect(names(apiByPath)).toEqual(apiPods);

      expect(await get(`${base}/`, "other.test")).toMatchObject({ status: 404, body: expect.stringContaining('no ingress rule matches host "other.test"') });
      const unavailable = await eventually(async () => {
        const r = await get(`${base}/empty/x`, "web.test");
        return r.status === 503 ? r : undefined;
      }, 10_000, "503 for the empty service");
      expect(unavailable.body).toContain("no ready endpoint for service default/empty");

      // The empty service's VIP: the connection fails at once (nftables: TCP reset to the SYN, so refused;
      // userspace: accepted, then reset), never a hang (get() gives up after 3 s with "no answer").
      await eventually(() => proxyHas(empty.spec!.clusterIp), 30_000, "the node's proxy to take the empty service's VIP");
      const emptyVip = `http://${empty.spec!.clusterIp}/`;
      const failure = await eventually(async () => {
        const f = await failureOf(emptyVip);
        return f.startsWith("answered") ? undefined : f;
      }, 10_000, "the empty service's VIP to be handled");
      expect(failure).toBe(mode === "nftables" ? "ECONNREFUSED" : "ECONNRESET");
    }, 240_000);

    it("stops clean: no nftables table, no flotilla0, no listener left behind", async () => {
      expect(agent).toBeDefined();
      agentStopped = true;
      await agent!.stop();
      expect(leftovers()).toEqual([]);
    }, 60_000);
  });
});
