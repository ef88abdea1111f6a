// Adds what every Flotilla gRPC server offers besides its own services: the standard health service and server
// reflection, so any generic gRPC client (grpcurl, grpcui, Postman) can discover and call the API.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { protoRoot } from "./proto-path.js";

/** Inbound message limit: comfortably above the largest object (1.5 MiB) so the API can explain the rejection. */
export const MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

export function newServer(): grpc.Server {
  return new grpc.Server({
    "grpc.max_receive_message_length": MAX_RECEIVE_BYTES,
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_permit_without_calls": 1,
  });
}

/**
 * Serves health for each named service, and reflection over exactly the .proto files this server implements plus
 * the health service's own, so reflection lists what is really served.
 */
export function addHealthAndReflection(server: grpc.Server, services: string[], protoFiles: string[]): HealthImplementation {
  const root = protoRoot();
  const definition = loadSync([...protoFiles, healthProto()], { includeDirs: [root], keepCase: false, longs: String, enums: String });
  new ReflectionService(definition, { services: [...services, "grpc.health.v1.Health"] }).addToServer(server);
  const statuses: Record<string, "SERVING"> = { "": "SERVING" };
  for (const s of services) statuses[s] = "SERVING";
  const health = new HealthImplementation(statuses);
  health.addToServer(server);
  return health;
}

function healthProto(): string {
  return join(dirname(createRequire(import.meta.url).resolve("grpc-health-check/package.json")), "proto", "health", "v1", "health.proto");
}

export async function bind(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port)));
  });
}
