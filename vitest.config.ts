import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    // Files may run in parallel (each isolates itself in its own schema or
    // database); a database-backed test may wait on real I/O for a few seconds.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Vitest's default number of forks (one fewer than the cores) stays: on a
    // two-core machine the suite runs one file at a time. Three at once took
    // half the time, but the one-minute chaos run then shared the CPU with
    // two other files, and a starved worker's job outlived its lease: an
    // overlap-skip schedule was seen running twice at once (the chaos run's
    // check) in a CI run.
  },
});
