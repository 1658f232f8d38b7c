import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    // Files run in parallel (each isolates itself in its own schema); a
    // database-backed test may wait on real I/O for a few seconds.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
