// A random source in [0, 1) from the OS, for production nodes (they need no replay; the simulator injects a seeded
// one). Bytes are drawn 4 KiB at a time, so a proposal's id does not cost a system call.
import { randomBytes } from "node:crypto";

const POOL_BYTES = 4096;
let pool = randomBytes(POOL_BYTES);
let offset = 0;

export function osRandom(): number {
  if (offset + 4 > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const value = pool.readUInt32LE(offset);
  offset += 4;
  return value / 0x1_0000_0000;
}
