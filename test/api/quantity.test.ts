import { describe, expect, it } from "vitest";
import { formatBytes, formatCpuMillis, isValidQuantity, parseBytes, parseCpuMillis } from "../../src/api/quantity.js";

describe("quantities", () => {
  it("parses CPU as millicores, exactly", () => {
    expect(parseCpuMillis("250m")).toBe(250);
    expect(parseCpuMillis("0.5")).toBe(500);
    expect(parseCpuMillis("2")).toBe(2000);
    expect(parseCpuMillis(".1")).toBe(100);
    expect(parseCpuMillis("1.0005")).toBe(1001); // rounds up, as Kubernetes does for requests
  });

  it("parses memory with binary and decimal suffixes and exponents", () => {
    expect(parseBytes("128Mi")).toBe(128 * 1024 * 1024);
    expect(parseBytes("1Gi")).toBe(1024 ** 3);
    expect(parseBytes("500M")).toBe(500_000_000);
    expect(parseBytes("1.5Gi")).toBe(1.5 * 1024 ** 3);
    expect(parseBytes("1e3")).toBe(1000);
    expect(parseBytes("64")).toBe(64);
  });

  it("rejects malformed quantities", () => {
    for (const bad of ["", "lots", "-1", "1.2.3", "10mb", "Mi", "1 Gi", "1e99"]) expect(isValidQuantity(bad)).toBe(false);
    expect(() => parseCpuMillis("lots")).toThrow(/"lots" is not a non-negative quantity/);
  });

  it("formats back to readable units", () => {
    expect(formatCpuMillis(2000)).toBe("2");
    expect(formatCpuMillis(250)).toBe("250m");
    expect(formatBytes(1024 ** 3)).toBe("1Gi");
    expect(formatBytes(3 * 1024 * 1024)).toBe("3Mi");
    expect(formatBytes(1536)).toBe("1Ki"); // not a whole unit: rounded down to Ki, as node capacity is reported
    expect(formatBytes(2048 + 1)).toBe("2Ki");
  });
});
