// Starts a real master on a loopback port with a temporary data directory, and gives an admin client.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiClient } from "../../src/api/client.js";
import { Master, type MasterOptions } from "../../src/master/master.js";

export interface TestMaster {
  master: Master;
  client: ApiClient;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startTestMaster(options: Partial<MasterOptions> = {}): Promise<TestMaster> {
  const dataDir = mkdtempSync(join(tmpdir(), "flotilla-master-"));
  const master = new Master({ listen: "127.0.0.1:0", dataDir, ...options });
  await master.start();
  await master.controlPlane.ready();
  const client = new ApiClient({ servers: [master.address], token: master.adminToken, timeoutMs: 10_000 });
  return {
    master,
    client,
    dataDir,
    async stop() {
      client.close();
      await master.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls until check returns a value (not undefined/false), or fails after timeoutMs with the last state. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ""}`);
}
