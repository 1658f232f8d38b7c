import {
  type BenchFlag,
  type BenchOptionsOf,
  COMMON_BENCH_FLAGS,
} from "../../src/cli/bench-flags.js";

/** `npm run soak`: the flags, parsed by the harness like the other benchmarks'. */
export const SOAK_FLAGS = {
  ...COMMON_BENCH_FLAGS,
  quick: {
    ...COMMON_BENCH_FLAGS.quick,
    help: "a smoke run: 1 minute at 200 jobs/s over 100,000 delayed and 100,000 finished jobs",
  },
  minutes: {
    flags: "--minutes <m>",
    kind: "count",
    full: 10,
    quick: 1,
    help: "how long jobs are enqueued; one row of the report per minute",
  },
  rate: {
    flags: "--rate <n>",
    kind: "number",
    full: 2_000,
    quick: 200,
    help: "jobs enqueued per second, paced: a batch every 10 ms",
  },
  workers: {
    flags: "--workers <n>",
    kind: "count",
    full: 1,
    help: "worker processes (each with --concurrency)",
  },
  delayed: {
    flags: "--delayed <n>",
    kind: "count",
    full: 1_000_000,
    quick: 100_000,
    zeroSkips: true,
    help: "delayed jobs loaded first, due 30 days to a year from now",
  },
  finished: {
    flags: "--finished <n>",
    kind: "count",
    full: 1_000_000,
    quick: 100_000,
    zeroSkips: true,
    help: "finished jobs loaded first (80% succeeded over the last day, 20% failed over 14 days), kept by the retention",
  },
  jobsStorage: {
    flags: "--jobs-storage <params>",
    kind: "text",
    help: "storage parameters set on the soak's jobs table before it runs, to try autovacuum settings without a migration: autovacuum_vacuum_scale_factor=0.02,autovacuum_vacuum_threshold=1000",
  },
} as const satisfies Record<string, BenchFlag>;

export type SoakOptions = BenchOptionsOf<typeof SOAK_FLAGS>;

/** --jobs-storage as name/value pairs, or a reason it cannot be used. */
export function parseStorage(text: string | undefined): [string, string][] | string {
  if (text === undefined) return [];
  const pairs: [string, string][] = [];
  for (const item of text.split(",")) {
    const match = /^\s*(autovacuum_[a-z_]+|fillfactor)\s*=\s*([0-9.]+|true|false)\s*$/.exec(item);
    if (!match) {
      return `--jobs-storage wants name=value pairs of autovacuum_* parameters (or fillfactor), got "${item}"`;
    }
    pairs.push([match[1] as string, match[2] as string]);
  }
  return pairs;
}
