// The CLI's service commands as a user runs them (the built CLI as a process, against a real master): expose a
// Deployment, get services and endpoints, describe a service with its endpoints and their pods, apply Service and
// Ingress manifests, and the errors for bad input, which name the field and the rule.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Deployment } from "../../src/gen/flotilla/v1/deployment.js";
import { execFile } from "node:child_process";
import { CLI, requireBuild } from "../support/processes.js";
import { eventually, startTestMaster, type TestMaster } from "../support/master.js";
import { Pod } from "../../src/gen/flotilla/v1/pod.js";

/** Runs the CLI without blocking this process's event loop: the master under test lives in it. */
function run(config: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, "--config", config, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe("flotilla expose / get services / describe service", () => {
  let t: TestMaster;
  let config: string;
  beforeAll(async () => {
    requireBuild();
    t = await startTestMaster({ serviceCidr: "10.98.0.0/24" });
    config = join(t.dataDir, "flotilla.yaml");
    writeFileSync(config, `servers: ["${t.master.address}"]\ntoken: ${t.master.adminToken}\n`);
    await t.client.call((c, md, o, cb) =>
      c.deployments.createDeployment(
        Deployment.fromPartial({
          metadata: { name: "web", labels: { app: "web" } },
          spec: {
            replicas: 0,
            selector: { matchLabels: { app: "web" } },
            template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "httpd", image: "img", ports: [{ name: "http", containerPort: 80 }] }] } },
          },
        }),
        md,
        o,
        cb,
      ),
    );
  });
  afterAll(async () => t.stop());

  it("exposes a deployment as a NodePort service and shows it", async () => {
    const exposed = await run(config, "expose", "deployment/web", "--port", "8080", "--target-port", "http", "--type", "NodePort");
    expect(exposed.stderr).toBe("");
    expect(exposed.stdout).toMatch(/^service\/web exposed on 10\.98\.0\.\d+:8080 nodePort 3\d{4}\n$/);
    const table = (await run(config, "get", "services")).stdout;
    expect(table).toMatch(/^NAME\s+TYPE\s+CLUSTER-IP\s+PORT\(S\)\s+AGE\n/);
    expect(table).toMatch(/web\s+NodePort\s+10\.98\.0\.\d+\s+8080:3\d{4}\/TCP/);
    expect((await run(config, "get", "svc", "-o", "wide")).stdout).toMatch(/SELECTOR[\s\S]*app=web/);
  });

  it("shows endpoints with their pods once pods are ready, and none before", async () => {
    await eventually(async () => (await run(config, "get", "endpoints")).stdout.match(/web\s+<none>/), 10_000, "empty endpoints");
    const created = await t.client.call<Pod>((c, md, o, cb) =>
      c.pods.createPod(Pod.fromPartial({ metadata: { name: "web-1", labels: { app: "web" } }, spec: { nodeName: "n1", containers: [{ name: "httpd", image: "img", ports: [{ name: "http", containerPort: 80 }] }] } }), md, o, cb),
    );
    const status = { phase: "Running", hostIp: "192.0.2.7", conditions: [{ type: "Ready", status: "True" }], ports: [{ container: "httpd", name: "http", containerPort: 80, hostIp: "", hostPort: 31080, protocol: "TCP" }] };
    await t.client.call((c, md, o, cb) => c.pods.updatePodStatus(Pod.fromPartial({ ...created, status }), md, o, cb));
    await eventually(async () => (await run(config, "get", "ep")).stdout.match(/web\s+192\.0\.2\.7:31080/), 10_000, "the pod in the endpoints");
    const described = (await run(config, "describe", "service", "web")).stdout;
    expect(described).toMatch(/Type:\s+NodePort/);
    expect(described).toMatch(/IP:\s+10\.98\.0\.\d+/);
    expect(described).toMatch(/NodePort:\s+<unset>\s+3\d{4}\/TCP/);
    expect(described).toMatch(/Endpoints:\s*\n\s+192\.0\.2\.7:31080 \(web-1 on n1\)/);
  });

  it("applies Service and Ingress manifests, and refuses bad ones naming the field", async () => {
    const file = join(t.dataDir, "net.yaml");
    writeFileSync(
      file,
      [
        "apiVersion: flotilla.io/v1\nkind: Service\nmetadata: {name: api}\nspec:\n  selector: {app: api}\n  ports: [{name: http, port: 80, targetPort: \"8080\"}]\n",
        "---\napiVersion: flotilla.io/v1\nkind: Ingress\nmetadata: {name: site}\nspec:\n  rules:\n  - host: example.test\n    paths: [{pathPrefix: /api, backend: {service: api, port: http}}]\n  defaultBackend: {service: web, port: \"8080\"}\n",
      ].join(""),
    );
    const applied = await run(config, "apply", "-f", file);
    expect(applied.stderr).toBe("");
    expect(applied.stdout).toMatch(/service\/api created/);
    expect(applied.stdout).toMatch(/ingress\/site created/);
    expect((await run(config, "get", "ingresses")).stdout).toMatch(/site\s+example\.test\s+example\.test\/api → api:http, default → web:8080/);

    const bad = join(t.dataDir, "bad.yaml");
    writeFileSync(bad, "apiVersion: flotilla.io/v1\nkind: Service\nmetadata: {name: bad}\nspec:\n  ports: [{port: 99999}]\n  type: NodePort\n");
    const refused = await run(config, "apply", "-f", bad);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/spec\.ports\[0\]\.port: 99999 must be between 1 and 65535/);
    const typo = join(t.dataDir, "typo.yaml");
    writeFileSync(typo, "apiVersion: flotilla.io/v1\nkind: Service\nmetadata: {name: typo}\nspec:\n  ports: [{port: 80}]\n  clusterIP: 10.98.0.9\n");
    expect((await run(config, "apply", "-f", typo)).stderr).toMatch(/clusterIP/);
    expect((await run(config, "delete", "endpoints", "web")).stderr).toMatch(/kept by the endpoints controller/);
  });
});
