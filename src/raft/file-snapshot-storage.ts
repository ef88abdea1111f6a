// Durable snapshots: one file per snapshot, written atomically, checksummed, the newest few kept.
//
// Files: <dir>/snap/<term, 16 hex>-<index, 16 hex>.snap, so names sort by (term, index), which for one node's
// snapshots is the order of their indexes. Content, little endian:
//   [8 bytes magic "FLSNAP01"][u32 crc][u32 metaLength][meta: JSON {index, term, confState}][data]
// with crc = CRC-32C of everything after the crc field.
//
// Invariants: a *.snap file is complete once it has its name (written to a *.tmp, fsynced, renamed, directory
// fsynced); its meta matches its name. A file that fails these checks is reported, renamed to *.broken (so it is
// reported once and no longer counts among the kept), and latest() falls back to the next older one.
import { open, readdir, readFile, rename, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { crc32c } from "./crc32c.js";
import type { SnapshotStorage } from "./storage.js";
import { mkdirDurable } from "./wal.js";
import type { ConfState, Snapshot, SnapshotMeta } from "./types.js";

const MAGIC = Buffer.from("FLSNAP01", "latin1");
const HEADER = MAGIC.length + 8;
const NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export interface SnapshotCorruption {
  file: string;
  reason: string;
}

export interface FileSnapshotStorageOptions {
  /** How many snapshots to keep (default 2: the newest and one to fall back to). */
  keep?: number;
  /** Called for each snapshot file found corrupt (then renamed to *.broken). */
  onCorrupt?: (info: SnapshotCorruption) => void;
}

const hex = (n: number) => n.toString(16).padStart(16, "0");
const fileName = (meta: SnapshotMeta) => `${hex(meta.term)}-${hex(meta.index)}.snap`;

export class FileSnapshotStorage implements SnapshotStorage {
  readonly dir: string;
  private readonly keep: number;
  private readonly onCorrupt?: (info: SnapshotCorruption) => void;
  private newest?: Snapshot;
  /** Serializes saves and loads (each lists and prunes the directory). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(dir: string, options: FileSnapshotStorageOptions = {}) {
    this.dir = join(dir, "snap");
    this.keep = Math.max(1, options.keep ?? 2);
    this.onCorrupt = options.onCorrupt;
  }

  /** The newest snapshot this instance saved or loaded, without touching the disk (for LogReader.snapshot()). */
  current(): Snapshot | undefined {
    return this.newest;
  }

  save(snapshot: Snapshot): Promise<void> {
    return this.serialize(async () => {
      mkdirDurable(this.dir);
      const name = fileName(snapshot.meta);
      const tmp = join(this.dir, `${name}.tmp`);
      const meta = Buffer.from(JSON.stringify(snapshot.meta), "utf8");
      const head = Buffer.alloc(HEADER + 4);
      MAGIC.copy(head);
      head.writeUInt32LE(meta.length, HEADER);
      const crc = crc32c(snapshot.data, crc32c(meta, crc32c(head, 0, HEADER)));
      head.writeUInt32LE(crc, MAGIC.length);
      const fh = await open(tmp, "w");
      try {
        for (const part of [head, meta, snapshot.data]) await writeAll(fh, part);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(this.dir, name));
      await syncDir(this.dir);
      if (!this.newest || this.newest.meta.index <= snapshot.meta.index) this.newest = snapshot;
      await this.prune();
    });
  }

  latest(): Promise<Snapshot | undefined> {
    return this.serialize(async () => {
      for (const name of (await this.names()).reverse()) {
        const file = join(this.dir, name);
        try {
          const snapshot = decode(await readFile(file), name);
          if (!this.newest || this.newest.meta.index < snapshot.meta.index) this.newest = snapshot;
          return snapshot;
        } catch (e) {
          this.onCorrupt?.({ file, reason: (e as Error).message });
          await rename(file, `${file}.broken`);
        }
      }
      return undefined;
    });
  }

  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const result = this.queue.then(op);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Snapshot file names, oldest first. */
  private async names(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((n) => NAME.test(n)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
  }

  /** Deletes all but the newest `keep` snapshots, and temp files a crash left behind. */
  private async prune(): Promise<void> {
    const names = await this.names();
    const stale = names.slice(0, Math.max(0, names.length - this.keep));
    const temps = (await readdir(this.dir)).filter((n) => n.endsWith(".snap.tmp"));
    for (const n of [...stale, ...temps]) await unlink(join(this.dir, n));
    if (stale.length + temps.length > 0) await syncDir(this.dir);
  }
}

function decode(b: Buffer, name: string): Snapshot {
  if (b.length < HEADER + 4 || !b.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error("not a snapshot file (bad magic or too short)");
  if (crc32c(b, 0, HEADER) !== b.readUInt32LE(MAGIC.length)) throw new Error("checksum mismatch");
  const metaLength = b.readUInt32LE(HEADER);
  if (HEADER + 4 + metaLength > b.length) throw new Error("meta length beyond the end of the file");
  const meta = parseMeta(b.toString("utf8", HEADER + 4, HEADER + 4 + metaLength));
  if (fileName(meta) !== name) throw new Error(`meta (term ${meta.term}, index ${meta.index}) does not match the file name`);
  const data = new Uint8Array(b.length - HEADER - 4 - metaLength);
  data.set(b.subarray(HEADER + 4 + metaLength));
  return { meta, data };
}

function parseMeta(json: string): SnapshotMeta {
  const m = JSON.parse(json) as { index?: unknown; term?: unknown; confState?: Partial<ConfState> };
  const ids = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string");
  if (!Number.isSafeInteger(m.index) || !Number.isSafeInteger(m.term) || !ids(m.confState?.voters) || !ids(m.confState?.learners)) {
    throw new Error("malformed meta");
  }
  return { index: m.index as number, term: m.term as number, confState: { voters: m.confState!.voters!, learners: m.confState!.learners! } };
}

async function writeAll(fh: FileHandle, b: Uint8Array): Promise<void> {
  for (let off = 0; off < b.length; ) off += (await fh.write(b, off, b.length - off)).bytesWritten;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
