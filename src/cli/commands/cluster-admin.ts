// `flotilla members list|remove` and `flotilla snapshot save|restore`: the Raft group of masters, and backups.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ApiClient } from "../../api/client.js";
import type { ListMembersResponse, SnapshotChunk } from "../../gen/flotilla/v1/cluster.js";
import { FileLogStorage } from "../../raft/file-log-storage.js";
import { FileSnapshotStorage } from "../../raft/file-snapshot-storage.js";
import { table } from "../format.js";
import { parseInitialCluster } from "./daemons.js";

const MAGIC = Buffer.from("FLOTSNP1");

export async function listMembers(client: ApiClient): Promise<string> {
  const res = await client.call<ListMembersResponse>((s, md, o, cb) => s.cluster.listMembers({}, md, o, cb));
  const rows = res.members.map((m) => [m.name, m.isLearner ? "learner" : "voter", m.isLeader ? "yes" : "", m.raftAddress || "<in memory>"]);
  return table(["NAME", "ROLE", "LEADER", "RAFT ADDRESS"], rows);
}

export async function removeMember(client: ApiClient, name: string): Promise<string> {
  await client.call<ListMembersResponse>((s, md, o, cb) => s.cluster.removeMember({ name }, md, o, cb));
  return `member ${name} removed`;
}

/** Writes the store's image with a checksum: FLOTSNP1, sha256(data), data. */
export async function saveSnapshot(client: ApiClient, file: string): Promise<string> {
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const stream = client.stream<SnapshotChunk>((s, md) => s.cluster.saveSnapshot({}, md));
    stream.on("data", (c: SnapshotChunk) => chunks.push(Buffer.from(c.data)));
    stream.on("end", resolve);
    stream.on("error", reject);
  });
  const data = Buffer.concat(chunks);
  writeFileSync(file, Buffer.concat([MAGIC, createHash("sha256").update(data).digest(), data]), { mode: 0o600 });
  return `snapshot saved to ${file} (${data.length} bytes)`;
}

function readSnapshotFile(file: string): Buffer {
  const bytes = readFileSync(file);
  if (bytes.length < 40 || !bytes.subarray(0, 8).equals(MAGIC)) throw new Error(`${file}: not a flotilla snapshot (flotilla snapshot save makes them)`);
  const data = bytes.subarray(40);
  if (!createHash("sha256").update(data).digest().equals(bytes.subarray(8, 40))) throw new Error(`${file}: checksum mismatch: the file is damaged`);
  return data;
}

/**
 * Makes a master's data directory hold the backup as its Raft snapshot, for a new group with the given members:
 * run it for every member with the same file and --initial-cluster, then start them.
 */
export async function restoreSnapshot(file: string, dataDir: string, name: string, initialCluster: string): Promise<string> {
  const data = readSnapshotFile(file);
  const peers = parseInitialCluster(initialCluster);
  if (!peers.has(name)) throw new Error(`--initial-cluster must list this member's own name "${name}"`);
  const dir = join(dataDir, "raft");
  mkdirSync(dir, { recursive: true });
  const snapshots = new FileSnapshotStorage(dir);
  if (await snapshots.latest()) throw new Error(`${dataDir} already holds a Raft log: restore into an empty directory`);
  const snapshot = { meta: { index: 1, term: 1, confState: { voters: [...peers.keys()], learners: [] } }, data: new Uint8Array(data) };
  await snapshots.save(snapshot);
  const storage = await FileLogStorage.open(dir, { snapshots });
  storage.applySnapshot(snapshot);
  storage.setHardState({ term: 1, vote: "", commit: 1 });
  await storage.sync();
  await storage.close();
  return `restored ${file} into ${dataDir} as member ${name} of ${[...peers.keys()].join(", ")}; start it with the same --initial-cluster`;
}
