// Logs of the process driver, read back from the files the process writes to directly. The files carry no
// timestamps, so what is already written comes out as all of stdout, then all of stderr (and tailLines applies to
// each file). When following, each file is read as soon as inotify (or the fallback poll) says it grew, which keeps
// the two streams in arrival order to within one wake-up.
import { watch, type FSWatcher } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { STDERR_LOG, STDOUT_LOG } from "./process-state.js";
import { RuntimeError, type LogChunk, type LogOptions } from "./runtime.js";

const READ_CHUNK_BYTES = 64 * 1024;
const TAIL_BLOCK_BYTES = 8 * 1024;
const NEWLINE = 0x0a;
/** How often a follower looks again when inotify says nothing (it misses nothing, but wakes us late at worst). */
const FOLLOW_POLL_MS = 250;

interface LogFile {
  stream: LogChunk["stream"];
  handle: FileHandle;
  position: number;
}

/**
 * Yields the container's output. When following, it ends once `hasExited` answers true and both files are drained,
 * or when the signal aborts.
 */
export async function* readLogFiles(
  dir: string,
  options: LogOptions,
  hasExited: () => Promise<boolean>,
): AsyncIterable<LogChunk> {
  const { signal } = options;
  if (signal?.aborted) return;
  const files = await openLogFiles(dir, options.tailLines);
  const wakeUp = new WakeUp(dir, signal);
  try {
    for (const file of files) yield* readNew(file);
    while (options.follow && !signal?.aborted) {
      const before = files.map((file) => file.position);
      for (const file of files) yield* readNew(file);
      if (files.some((file, i) => file.position !== before[i])) continue;
      if (await hasExited()) {
        // Whatever it wrote just before exiting.
        for (const file of files) yield* readNew(file);
        return;
      }
      await wakeUp.next(FOLLOW_POLL_MS);
    }
  } finally {
    wakeUp.close();
    await Promise.all(files.map((file) => file.handle.close()));
  }
}

async function openLogFiles(dir: string, tailLines: number): Promise<LogFile[]> {
  const files: LogFile[] = [];
  try {
    for (const [stream, name] of [["stdout", STDOUT_LOG], ["stderr", STDERR_LOG]] as const) {
      const handle = await open(join(dir, name), "r");
      files.push({ stream, handle, position: 0 });
    }
  } catch {
    await Promise.all(files.map((file) => file.handle.close()));
    throw new RuntimeError(`no log files in ${dir} (was the container removed?)`, "NotFound");
  }
  if (tailLines > 0) {
    for (const file of files) file.position = await tailOffset(file.handle, tailLines);
  }
  return files;
}

async function* readNew(file: LogFile): AsyncIterable<LogChunk> {
  for (;;) {
    const buffer = Buffer.alloc(READ_CHUNK_BYTES);
    const { bytesRead } = await file.handle.read(buffer, 0, buffer.length, file.position);
    if (bytesRead === 0) return;
    file.position += bytesRead;
    yield { stream: file.stream, data: buffer.subarray(0, bytesRead) };
  }
}

/** The offset where the last `lines` lines start; a final newline ends the last line rather than starting one. */
export async function tailOffset(handle: FileHandle, lines: number): Promise<number> {
  const { size } = await handle.stat();
  const block = Buffer.alloc(TAIL_BLOCK_BYTES);
  let seen = 0;
  for (let end = size; end > 0; ) {
    const start = Math.max(0, end - TAIL_BLOCK_BYTES);
    const { bytesRead } = await handle.read(block, 0, end - start, start);
    for (let i = bytesRead - 1; i >= 0; i--) {
      if (block[i] !== NEWLINE || start + i === size - 1) continue;
      if (++seen === lines) return start + i + 1;
    }
    end = start;
  }
  return 0;
}

/** Resolves next() on a change in the directory, after a timeout, or on abort, whichever comes first. */
class WakeUp {
  private readonly watcher: FSWatcher | undefined;
  private wake: (() => void) | undefined;
  private readonly onAbort = () => this.fire();

  constructor(dir: string, private readonly signal?: AbortSignal) {
    try {
      this.watcher = watch(dir, () => this.fire());
      this.watcher.on("error", () => undefined);
    } catch {
      // No inotify (or the directory vanished): the poll interval alone will do.
      this.watcher = undefined;
    }
    signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  next(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.fire(), timeoutMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  close(): void {
    this.watcher?.close();
    this.signal?.removeEventListener("abort", this.onAbort);
    this.fire();
  }

  private fire(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
