// A generic gRPC client that knows nothing of Flotilla's generated code can discover the API through server
// reflection, call it, and check health; and the master serves Prometheus metrics.
import * as grpc from "@grpc/grpc-js";
import { loadFileDescriptorSetFromBuffer, loadSync } from "@grpc/proto-loader";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMaster, type TestMaster } from "../support/master.js";

const require = createRequire(import.meta.url);
const reflectionProto = join(dirname(require.resolve("@grpc/reflection/package.json")), "build/proto/grpc/reflection/v1/reflection.proto");
const healthProto = join(dirname(require.resolve("grpc-health-check/package.json")), "proto/health/v1/health.proto");

type Dynamic = Record<string, (...args: unknown[]) => unknown> & grpc.Client;
type Ctor = new (address: string, creds: grpc.ChannelCredentials) => Dynamic;

function lookup(pkg: grpc.GrpcObject, path: string): Ctor {
  return path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], pkg) as Ctor;
}

/** One request on the reflection stream. */
function reflect(client: Dynamic, request: Record<string, string>): Promise<Record<string, { [k: string]: unknown }>> {
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo() as grpc.ClientDuplexStream<unknown, Record<string, { [k: string]: unknown }>>;
    call.on("data", (res) => {
      resolve(res);
      call.end();
    });
    call.on("error", reject);
    call.write(request);
  });
}

/** A FileDescriptorSet is field 1, repeated, of serialized FileDescriptorProtos. */
function descriptorSet(files: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    let n = f.length;
    const varint: number[] = [];
    do {
      varint.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
      n >>>= 7;
    } while (n > 0);
    parts.push(Buffer.from([0x0a, ...varint]), f);
  }
  return Buffer.concat(parts);
}

describe("generic gRPC clients", () => {
  let t: TestMaster;
  beforeAll(async () => {
    t = await startTestMaster({ metricsListen: "127.0.0.1:0" });
  });
  afterAll(async () => t.stop());

  it("discover the services through reflection and call one with a dynamically built client", async () => {
    const reflection = grpc.loadPackageDefinition(loadSync(reflectionProto, { keepCase: true }));
    const Reflection = lookup(reflection, "grpc.reflection.v1.ServerReflection");
    const client = new Reflection(t.master.address, grpc.credentials.createInsecure());
    const listed = await reflect(client, { list_services: "" });
    const services = (listed.list_services_response.service as { name: string }[]).map((s) => s.name);
    expect(services).toEqual(expect.arrayContaining([
      "flotilla.v1.PodService", "flotilla.v1.NodeService", "flotilla.v1.DeploymentService", "flotilla.v1.ClusterService", "grpc.health.v1.Health",
    ]));
    expect(services).not.toContain("flotilla.v1.AgentService");

    const files = await reflect(client, { file_containing_symbol: "flotilla.v1.PodService" });
    const protos = files.file_descriptor_response.file_descriptor_proto as Buffer[];
    const dynamic = grpc.loadPackageDefinition(loadFileDescriptorSetFromBuffer(descriptorSet(protos), { longs: String, arrays: true }));
    const Pods = lookup(dynamic, "flotilla.v1.PodService");
    const pods = new Pods(t.master.address, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${t.master.adminToken}`);
    const list = await new Promise<{ items: unknown[]; resourceVersion: string }>((resolve, reject) =>
      pods.ListPods({ namespace: "default" }, md, (e: Error | null, r: { items: unknown[]; resourceVersion: string }) => (e ? reject(e) : resolve(r))),
    );
    expect(list.items).toEqual([]);
    expect(Number(list.resourceVersion)).toBeGreaterThanOrEqual(0);
    client.close();
    pods.close();
  });

  it("report SERVING through the standard health service", async () => {
    const health = grpc.loadPackageDefinition(loadSync(healthProto, { enums: String }));
    const Health = lookup(health, "grpc.health.v1.Health");
    const client = new Health(t.master.address, grpc.credentials.createInsecure());
    for (const service of ["", "flotilla.v1.PodService"]) {
      const res = await new Promise<{ status: string }>((resolve, reject) =>
        client.Check({ service }, (e: Error | null, r: { status: string }) => (e ? reject(e) : resolve(r))),
      );
      expect(res.status).toBe("SERVING");
    }
    client.close();
  });

  it("see API requests counted on /metrics", async () => {
    await t.client.call((s, md, o, cb) => s.pods.listPods({ namespace: "", labelSelector: "", fieldSelector: "" }, md, o, cb));
    const text = await (await fetch(`http://${t.master.metricsAddress}/metrics`)).text();
    expect(text).toMatch(/flotilla_api_requests_total\{service="PodService",method="ListPods",code="OK"\} [1-9]/);
    expect(text).toContain("flotilla_api_request_duration_seconds_bucket");
    expect(text).toContain("# TYPE flotilla_scheduler_attempts_total counter");
    expect(text).toContain("# TYPE flotilla_pods gauge");
  });
});
