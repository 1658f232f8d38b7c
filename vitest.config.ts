import { availableParallelism } from "node:os";
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
    // Most files spend their time waiting on PostgreSQL, child processes and
    // timers, not on this process's CPU: three forks even on two cores (the
    // default, one fewer than the cores, runs the suite one file at a time
    // there, in twice the time).
    maxWorkers: Math.max(3, availableParallelism() - 1),
  },
});
