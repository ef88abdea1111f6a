// Crash durability with a real process: a child appends in batches through the BUILT module (dist/, which
// `npm test` builds first), printing each index it has synced; we SIGKILL it at a random moment, reopen, and check
// that every acknowledged entry is there and right, that the log is contiguous, and that the next writer resumes.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileLogStorage } from "../../../src/raft/storage-files.js";
import { tempDir } from "./helpers.js";

const MODULE = join(process.cwd(), "dist", "src", "raft", "file-log-storage.js");
const ROUNDS = 6;

/** The data of entry (index, term), the same in the child and here. */
const payload = (index: number, term: number) => `entry ${index} term ${term} ${"#".repeat(index % 300)}`;

/** The child: opens the log, overwrites its last 3 entries with a new term (a conflict), then appends forever. */
const CHILD = `
import { FileLogStorage } from ${JSON.stringify(pathToFileURL(MODULE).href)};
const payload = ${payload.toString()};
const term = Number(process.env.CRASH_TERM);
const s = await FileLogStorage.open(process.env.CRASH_DIR, { segmentSize: 64 * 1024 });
let next = Math.max(1, s.lastIndex() - 2);
process.stdout.write("start " + next + "\\n");
let x = term * 7919;
for (;;) {
  x = (x * 1103515245 + 12345) % 2147483648;
  const batch = [];
  for (let n = 1 + ((x >>> 8) % 64); n > 0; n--, next++) {
    batch.push({ index: next, term, type: "normal", data: new TextEncoder().encode(payload(next, term)) });
  }
  s.append(batch);
  s.setHardState({ term, vote: "child", commit: next - 1 });
  await s.sync();
  process.stdout.write("synced " + (next - 1) + "\\n");
}
`;

interface Run {
  start: number;
  synced: number;
  lines: number;
}

/** Runs the child until it has reported `syncs` syncs (plus a random few ms), then SIGKILLs it. */
function runAndKill(dir: string, term: number, syncs: number): Promise<Run> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD], {
    env: { ...process.env, CRASH_DIR: dir, CRASH_TERM: String(term) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run: Run = { start: -1, synced: 0, lines: 0 };
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on("line", (line) => {
    const [what, n] = line.split(" ");
    if (what === "start") run.start = Number(n);
    if (what !== "synced") return;
    run.synced = Number(n);
    if (++run.lines === syncs) setTimeout(() => child.kill("SIGKILL"), Math.random() * 20);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("exit", (_code, signal) => {
      clearTimeout(timer);
      if (signal === "SIGKILL" && run.lines >= syncs) resolve(run);
      else reject(new Error(`child ended (${signal ?? "no signal"}) after ${run.lines} syncs: ${stderr}`));
    });
  });
}

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

describe("FileLogStorage crash durability (real process, SIGKILL)", () => {
  it("keeps every acknowledged entry, contiguous, across repeated kills", async () => {
    if (!existsSync(MODULE)) throw new Error(`${MODULE} is missing: run 'npm run build' first ('npm test' does it)`);
    /** The term each index must have, as far as known (index 0 unused). */
    const expected: number[] = [0];
    for (let term = 1; term <= ROUNDS; term++) {
      const run = await runAndKill(dir, term, 1 + Math.floor(Math.random() * 40));
      for (let i = run.start; i <= run.synced; i++) expected[i] = term;
      expected.length = run.synced + 1;

      const s = await FileLogStorage.open(dir, { segmentSize: 64 * 1024 });
      try {
        expect(s.lastIndex()).toBeGreaterThanOrEqual(run.synced);
        expect(s.initialState().hardState.commit).toBeGreaterThanOrEqual(run.synced);
        const entries = s.entries(1, s.lastIndex() + 1, Infinity);
        entries.forEach((e, i) => expect(e.index).toBe(i + 1));
        for (const e of entries) {
          // Acknowledged entries have the term we know; any later ones (written, not yet acknowledged) the last term.
          const want = e.index <= run.synced ? expected[e.index]! : term;
          expect([e.index, e.term, new TextDecoder().decode(e.data)]).toEqual([e.index, want, payload(e.index, want)]);
        }
        // What survived beyond the acknowledged is now the log the next writer starts from.
        for (const e of entries) expected[e.index] = e.term;
      } finally {
        await s.close();
      }
    }
  });
});
