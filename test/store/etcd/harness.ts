// Test support: an etcd API server over the in-memory backend on 127.0.0.1:0, and a runner for the real etcdctl.

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { addEtcdServices } from "../../../src/store/etcd/server.js";
import { MemoryEtcdBackend } from "../../../src/store/etcd/memory-backend.js";

export interface Harness {
  backend: MemoryEtcdBackend;
  port: number;
  endpoint: string;
  close(): Promise<void>;
}

export async function startServer(): Promise<Harness> {
  const server = new Server();
  const backend = new MemoryEtcdBackend();
  addEtcdServices(server, backend, { progressIntervalMs: 1000 });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    backend,
    port,
    endpoint: `127.0.0.1:${port}`,
    close: async () => {
      backend.close();
      server.forceShutdown();
    },
  };
}

export const ETCDCTL = "/usr/bin/etcdctl";

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs etcdctl to completion (bounded by a timeout), optionally feeding stdin. */
export function etcdctl(endpoint: string, args: string[], stdin?: string): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      ETCDCTL,
      ["--endpoints", endpoint, "--dial-timeout", "5s", "--command-timeout", "10s", ...args],
      { env: { ...process.env, ETCDCTL_API: "3" }, timeout: 20_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** A long-running etcdctl (watch, lease keep-alive) whose output is collected until it is killed. */
export function spawnEtcdctl(endpoint: string, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(ETCDCTL, ["--endpoints", endpoint, ...args], { env: { ...process.env, ETCDCTL_API: "3" } });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

/** Polls until `check` holds, at most `tries` times `intervalMs` apart; returns whether it held. */
export async function until(check: () => boolean | Promise<boolean>, tries = 100, intervalMs = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return false;
}
