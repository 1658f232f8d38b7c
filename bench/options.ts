import { parseArgs } from "node:util";
import { WORKLOAD_NAMES, type WorkloadName } from "./results.js";
import { type ConfigName, SYSTEM_NAMES, type SystemName } from "./systems/types.js";

export interface BenchOptions {
  json: boolean;
  quick: boolean;
  systems: SystemName[];
  workloads: WorkloadName[];
  configs: ConfigName[];
  /** Jobs in enqueue_bulk and in the process_* workloads. */
  jobs: number;
  /** How long each enqueue_single_* and the insert ceiling run. */
  singleSeconds: number;
  /** How long the latency workload enqueues, and at what rate. */
  latencySeconds: number;
  rate: number;
  /** Worker concurrency (per process), and callers of enqueue_single_10 and the ceiling. */
  concurrency: number;
  /** How long the latency run waits after its last enqueue; jobs not started by then are "lost". */
  settleSeconds: number;
  /** A process_* run stops here even if not every job was processed (reported as incomplete). */
  processTimeoutSeconds: number;
  redis: { host: string; port: number };
}

/** Sizes of a full run (the 20,000 jobs; about 8 minutes here) and of a --quick smoke run. */
const FULL = {
  jobs: 20_000,
  singleSeconds: 3,
  latencySeconds: 8,
  settleSeconds: 5,
  processTimeoutSeconds: 15,
};
const QUICK = {
  jobs: 1_000,
  singleSeconds: 0.5,
  latencySeconds: 1,
  settleSeconds: 3,
  processTimeoutSeconds: 3,
};

export const USAGE = `usage: rota bench [options]   (from a checkout: npm run bench -- [options])

Runs rota and its peers (graphile-worker, pg-boss, BullMQ when Redis answers,
and a plain pg insert ceiling) through the same workloads on one PostgreSQL.

  --json                  print one JSON object on stdout (progress goes to stderr)
  --quick                 a smoke run: small sizes, default configs only (about a minute)
  --systems <list>        comma-separated: ${SYSTEM_NAMES.join(",")}
  --workloads <list>      comma-separated: ${WORKLOAD_NAMES.join(",")}
  --configs <list>        default,tuned (default: both; --quick: default; rota and pg have only default)
  --jobs <n>              jobs for enqueue_bulk and process_* (default ${FULL.jobs}; quick ${QUICK.jobs})
  --single-seconds <s>    duration of each enqueue_single run and the ceiling (default ${FULL.singleSeconds}; quick ${QUICK.singleSeconds})
  --latency-seconds <s>   duration of the latency run (default ${FULL.latencySeconds}; quick ${QUICK.latencySeconds})
  --rate <n>              latency run enqueue rate, jobs/s (default 50)
  --concurrency <n>       worker concurrency and concurrent callers (default 10)
  --process-timeout <s>   cap on each process_* run (default ${FULL.processTimeoutSeconds}; quick ${QUICK.processTimeoutSeconds})
  -h, --help              this help

Environment: DATABASE_URL (else an embedded PostgreSQL is started),
BENCH_REDIS=host:port (default 127.0.0.1:6379), BENCH_JOBS, BENCH_SINGLE_SECONDS,
BENCH_LATENCY_SECONDS, BENCH_RATE, BENCH_PROCESS_TIMEOUT, BENCH_PGBOSS_BATCH_SIZE.`;

export class UsageError extends Error {}

export function parseOptions(argv: string[]): BenchOptions | "help" {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values } = parsed;
  if (values.help) return "help";
  const quick = values.quick ?? false;
  const sizes = quick ? QUICK : FULL;
  const env = process.env;
  const number = (
    flag: string,
    value: string | undefined,
    envValue: string | undefined,
    fallback: number,
  ) => {
    const text = value ?? envValue;
    if (text === undefined || text === "") return fallback;
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0)
      throw new UsageError(`--${flag} must be a positive number, got ${JSON.stringify(text)}`);
    return n;
  };
  const [redisHost = "127.0.0.1", redisPort = "6379"] = (env.BENCH_REDIS ?? "")
    .split(":")
    .filter(Boolean);
  return {
    json: values.json ?? false,
    quick,
    systems: list("systems", values.systems, SYSTEM_NAMES),
    workloads: list("workloads", values.workloads, WORKLOAD_NAMES),
    // A quick run is a smoke test: each system's default configuration unless asked for more.
    configs: list("configs", values.configs ?? (quick ? "default" : undefined), [
      "default",
      "tuned",
    ] as const),
    jobs: Math.round(number("jobs", values.jobs, env.BENCH_JOBS, sizes.jobs)),
    singleSeconds: number(
      "single-seconds",
      values["single-seconds"],
      env.BENCH_SINGLE_SECONDS,
      sizes.singleSeconds,
    ),
    latencySeconds: number(
      "latency-seconds",
      values["latency-seconds"],
      env.BENCH_LATENCY_SECONDS,
      sizes.latencySeconds,
    ),
    rate: number("rate", values.rate, env.BENCH_RATE, 50),
    settleSeconds: sizes.settleSeconds,
    concurrency: Math.round(number("concurrency", values.concurrency, undefined, 10)),
    processTimeoutSeconds: number(
      "process-timeout",
      values["process-timeout"],
      env.BENCH_PROCESS_TIMEOUT,
      sizes.processTimeoutSeconds,
    ),
    redis: { host: redisHost, port: Number(redisPort) },
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      json: { type: "boolean" },
      quick: { type: "boolean" },
      systems: { type: "string" },
      workloads: { type: "string" },
      configs: { type: "string" },
      jobs: { type: "string" },
      "single-seconds": { type: "string" },
      "latency-seconds": { type: "string" },
      rate: { type: "string" },
      concurrency: { type: "string" },
      "process-timeout": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

/** A comma-separated list checked against the allowed names; absent means all of them. */
function list<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
): T[] {
  if (value === undefined) return [...allowed];
  const names = value
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!(allowed as readonly string[]).includes(name)) {
      throw new UsageError(`--${flag}: unknown "${name}"; choose from ${allowed.join(", ")}`);
    }
  }
  if (names.length === 0)
    throw new UsageError(`--${flag} is empty; choose from ${allowed.join(", ")}`);
  return allowed.filter((name) => names.includes(name));
}
