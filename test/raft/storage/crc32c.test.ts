import { describe, expect, it } from "vitest";
import { crc32c } from "../../../src/raft/crc32c.js";

const bytes = (s: string) => new TextEncoder().encode(s);

describe("crc32c", () => {
  it("matches the standard check value and the RFC 3720 vectors", () => {
    expect(crc32c(bytes("123456789"))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });

  it("composes: the crc of a ++ b continues from the crc of a, and ranges select bytes", () => {
    const all = bytes("The quick brown fox jumps over the lazy dog, twice over.");
    for (const cut of [0, 1, 7, 8, 9, 30, all.length]) {
      expect(crc32c(all.subarray(cut), crc32c(all.subarray(0, cut)))).toBe(crc32c(all));
      expect(crc32c(all, 0, cut, all.length)).toBe(crc32c(all.subarray(cut)));
    }
  });
});
