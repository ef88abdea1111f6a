// Raft WAL throughput: durable appends per second through FileLogStorage (append a batch, sync), next to the peer
// baseline measured in the same run on the same file system: a plain writeSync + fdatasync of the same bytes per
// batch, i.e. what the disk allows with one sync per batch and no framing, checksums or bookkeeping.
//
//   npm run build && node dist/bench/raft-wal.js [--dir DIR] [--seconds S] [--rounds R] [--size BYTES] [--batches 1,16,256]
//
// Each batch size runs R rounds (default 5) of S seconds (default 1) per side, each in a fresh directory under DIR
// (default the OS temp dir, removed afterwards), alternating which side goes first, so that both see the same
// machine and disk: a virtual disk's sync latency drifts by 2-4x over seconds. Totals over the rounds are printed.
import { closeSync, fdatasync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FileLogStorage } from "../src/raft/storage-files.js";
import type { Entry } from "../src/raft/types.js";

/** Bytes the WAL adds to each entry: frame (length, crc, type) and term, index, entry type. */
const RECORD_OVERHEAD = 9 + 17;

interface Result {
  appends: number;
  syncs: number;
  seconds: number;
}

const datasync = (fd: number) => new Promise<void>((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve())));

async function walCase(dir: string, batch: number, size: number, seconds: number): Promise<Result> {
  const s = await FileLogStorage.open(dir);
  const data = new Uint8Array(size).fill(0x61);
  let next = 1;
  let syncs = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const entries: Entry[] = [];
    for (let i = 0; i < batch; i++) entries.push({ index: next++, term: 1, type: "normal", data });
    s.append(entries);
    await s.sync();
    syncs++;
  }
  const elapsed = (performance.now() - start) / 1000;
  await s.close();
  return { appends: next - 1, syncs, seconds: elapsed };
}

async function rawCase(dir: string, batch: number, size: number, seconds: number): Promise<Result> {
  const fd = openSync(join(dir, "raw"), "w");
  const buf = Buffer.alloc(batch * (size + RECORD_OVERHEAD), 0x61);
  let syncs = 0;
  let position = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    position += writeSync(fd, buf, 0, buf.length, position);
    await datasync(fd);
    syncs++;
  }
  const elapsed = (performance.now() - start) / 1000;
  closeSync(fd);
  return { appends: syncs * batch, syncs, seconds: elapsed };
}

async function inFreshDir<T>(parent: string, run: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(parent, "flotilla-bench-wal-"));
  try {
    return await run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: "string", default: tmpdir() },
      seconds: { type: "string", default: "1" },
      rounds: { type: "string", default: "5" },
      size: { type: "string", default: "256" },
      batches: { type: "string", default: "1,16,256" },
    },
  });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const size = Number(values.size);
  const batches = values.batches.split(",").map(Number);
  console.log(`$ node dist/bench/raft-wal.js ${process.argv.slice(2).join(" ")}`.trim());
  console.log(`date: ${new Date().toISOString()}; node ${process.version}; ${release()}; ${cpus().length} x ${cpus()[0]?.model ?? "?"}`);
  console.log(`dir: ${values.dir}; entry data: ${size} bytes; ${rounds} rounds x ${seconds} s per side and batch size\n`);
  console.log("| batch/sync | flotilla appends/s | syncs/s | baseline appends/s | syncs/s | flotilla/baseline |");
  console.log("|---:|---:|---:|---:|---:|---:|");
  for (const batch of batches) {
    const wal: Result = { appends: 0, syncs: 0, seconds: 0 };
    const raw: Result = { appends: 0, syncs: 0, seconds: 0 };
    const add = (total: Result, r: Result) => ((total.appends += r.appends), (total.syncs += r.syncs), (total.seconds += r.seconds));
    for (let r = 0; r < rounds; r++) {
      const sides = [
        async () => add(wal, await inFreshDir(values.dir, (d) => walCase(d, batch, size, seconds))),
        async () => add(raw, await inFreshDir(values.dir, (d) => rawCase(d, batch, size, seconds))),
      ];
      if (r % 2 === 1) sides.reverse();
      for (const side of sides) await side();
    }
    const rate = (r: Result) => r.appends / r.seconds;
    const cells = [batch, fmt(rate(wal)), fmt(wal.syncs / wal.seconds), fmt(rate(raw)), fmt(raw.syncs / raw.seconds), (rate(wal) / rate(raw)).toFixed(2)];
    console.log(`| ${cells.join(" | ")} |`);
  }
}

await main();
