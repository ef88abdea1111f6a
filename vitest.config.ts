import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // End-to-end files start real processes and containers; two cores run them one file at a time.
    fileParallelism: false,
    reporters: ["default"],
  },
});
