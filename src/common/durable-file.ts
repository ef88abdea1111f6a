// Small state files (a cluster's id, a log's base membership, a token) that a restart must find whole: written to a
// temporary file, fsynced, renamed over the old one and the directory fsynced, so a crash or a failing disk leaves
// either the old file or the new one, never a torn or empty one.
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";

export function writeFileDurably(path: string, data: string, mode = 0o644): void {
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, "w", mode);
  try {
    const bytes = Buffer.from(data);
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  const dir = openSync(dirname(path), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
