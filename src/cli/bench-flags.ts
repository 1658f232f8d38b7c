import { type Command, InvalidArgumentError, Option } from "commander";

/**
 * The flags of the two benchmarks, declared once. The harness in bench/
 * (`npm run bench`, `node --import tsx bench/scheduler/run.ts`) parses its
 * command line with these, and `rota bench` / `rota bench scheduler` declare
 * the same flags (help, checks and all) and pass on what they were given. A
 * flag's default can differ in a `--quick` run; `env` names the variable that
 * sets it when the flag is absent.
 */

/** The systems of the queue benchmark: rota, its peers, and plain `pg` (the insert ceiling). */
export const BENCH_SYSTEMS = [
  "rota",
  "graphile-worker",
  "pg-boss",
  "bullmq",
  "bullmq-postgres",
  "pg",
] as const;
export type BenchSystemName = (typeof BENCH_SYSTEMS)[number];

export const BENCH_WORKLOADS = [
  "enqueue_single_1",
  "enqueue_single_10",
  "enqueue_bulk",
  "process_1proc",
  "process_2proc",
  "process_limited",
  "latency",
  "insert_commit_ceiling",
] as const;
export type BenchWorkloadName = (typeof BENCH_WORKLOADS)[number];

/**
 * The scheduler benchmark's workloads: materialize (materialize_<due>_of_<schedules>
 * and materialize_<due>_of_<due>), materialize_targets (one fan-out cadence of
 * --targets targets), lateness, failover.
 */
export const SCHEDULER_BENCH_WORKLOADS = [
  "materialize",
  "materialize_targets",
  "lateness",
  "failover",
] as const;

/** The distribution strategies materialize_targets measures (distribution.ts). */
export const SCHEDULER_BENCH_DISTRIBUTIONS = ["random", "spread"] as const;

/** "default": the library's defaults; "tuned": its fastest documented configuration. */
export const BENCH_CONFIGS = ["default", "tuned"] as const;
export type BenchConfigName = (typeof BENCH_CONFIGS)[number];

type Kind = "boolean" | "count" | "number" | "list" | "text";

export interface BenchFlag {
  /** As commander takes it: "--jobs <n>". The option's key is its camel-cased long name. */
  flags: string;
  help: string;
  kind: Kind;
  /** The default of a full run (none: the flag is unset unless given). */
  full?: number | string;
  /** The default of a --quick run, when it differs. */
  quick?: number | string;
  /** The names a list may hold; a list left out means all of them. */
  choices?: readonly string[];
  /** The environment variable read when the flag is absent. */
  env?: string;
  /** rota declares it for every command (--database-url): `rota bench` does not declare it again. */
  global?: boolean;
  /** A count that may be 0 (the workload it sizes is then skipped). */
  zeroSkips?: boolean;
}

/** Flags every benchmark has (the soak's too, bench/soak/flags.ts), so they parse the same way in all. */
export const COMMON_BENCH_FLAGS = {
  json: {
    flags: "--json",
    kind: "boolean",
    help: "print one JSON object on stdout (progress goes to stderr)",
  },
  quick: {
    flags: "--quick",
    kind: "boolean",
    help: "a smoke run: small sizes (about half a minute)",
  },
  databaseUrl: {
    flags: "--database-url <url>",
    kind: "text",
    env: "DATABASE_URL",
    global: true,
    help: "the PostgreSQL to measure on (default: rota's embedded PostgreSQL, data in .rota/bench-pgdata)",
  },
  save: {
    flags: "--save <run>",
    kind: "text",
    help: "also write the JSON report to bench/results/<date>-[scheduler-]<run>.json (a new file)",
  },
  concurrency: {
    flags: "--concurrency <n>",
    kind: "count",
    full: 10,
    help: "worker concurrency (per process)",
  },
} as const satisfies Record<string, BenchFlag>;

/** `rota bench`, `npm run bench`: rota against its peers through the same workloads. */
export const QUEUE_BENCH_FLAGS = {
  ...COMMON_BENCH_FLAGS,
  quick: {
    ...COMMON_BENCH_FLAGS.quick,
    help: "a smoke run: small sizes, each system's default config only (one to two minutes)",
  },
  systems: {
    flags: "--systems <list>",
    kind: "list",
    choices: BENCH_SYSTEMS,
    help: "the systems to run, comma-separated",
  },
  workloads: {
    flags: "--workloads <list>",
    kind: "list",
    choices: BENCH_WORKLOADS,
    help: "the workloads to run, comma-separated (process_limited: rota only, the others skip it)",
  },
  configs: {
    flags: "--configs <list>",
    kind: "list",
    choices: BENCH_CONFIGS,
    full: "default,tuned",
    quick: "default",
    help: "peer configurations (rota and pg have only default)",
  },
  jobs: {
    flags: "--jobs <n>",
    kind: "count",
    full: 20_000,
    quick: 1_000,
    env: "BENCH_JOBS",
    help: "jobs of enqueue_bulk and process_*",
  },
  concurrency: {
    ...COMMON_BENCH_FLAGS.concurrency,
    help: "worker concurrency (per process), and the callers of enqueue_single_10 and the ceiling",
  },
  singleSeconds: {
    flags: "--single-seconds <s>",
    kind: "number",
    full: 3,
    quick: 0.5,
    env: "BENCH_SINGLE_SECONDS",
    help: "duration of each enqueue_single run and of the ceiling",
  },
  latencySeconds: {
    flags: "--latency-seconds <s>",
    kind: "number",
    full: 8,
    quick: 1,
    env: "BENCH_LATENCY_SECONDS",
    help: "how long the latency run enqueues",
  },
  rate: {
    flags: "--rate <n>",
    kind: "number",
    full: 50,
    env: "BENCH_RATE",
    help: "the latency run's enqueue rate, jobs/s",
  },
  settleSeconds: {
    flags: "--settle-seconds <s>",
    kind: "number",
    full: 5,
    quick: 3,
    help: "how long the latency run waits for its last jobs; those not started by then are lost",
  },
  processTimeout: {
    flags: "--process-timeout <s>",
    kind: "number",
    full: 15,
    quick: 3,
    env: "BENCH_PROCESS_TIMEOUT",
    help: "cap on each process_* run (process_limited: at least 60 s); a run stopped by it reports the rate it reached",
  },
  redis: {
    flags: "--redis <host:port>",
    kind: "text",
    full: "127.0.0.1:6379",
    env: "BENCH_REDIS",
    help: "BullMQ's Redis (skipped when nothing answers)",
  },
} as const satisfies Record<string, BenchFlag>;

/** `rota bench scheduler`: materialization (of schedules, of a fan-out cadence) and firing lateness. */
export const SCHEDULER_BENCH_FLAGS = {
  ...COMMON_BENCH_FLAGS,
  workloads: {
    flags: "--workloads <list>",
    kind: "list",
    choices: SCHEDULER_BENCH_WORKLOADS,
    help: "the workloads to run, comma-separated (materialize: both materialize_<due>_of_<schedules>)",
  },
  schedules: {
    flags: "--schedules <n>",
    kind: "count",
    full: 100_000,
    quick: 10_000,
    help: "schedules in the large materialization workload",
  },
  due: {
    flags: "--due <n>",
    kind: "count",
    full: 10_000,
    quick: 1_000,
    help: "how many of them are due in the measured tick",
  },
  rounds: {
    flags: "--rounds <n>",
    kind: "count",
    full: 3,
    quick: 1,
    help: "measured ticks per materialization workload (and cadences per distribution)",
  },
  targets: {
    flags: "--targets <n>",
    kind: "count",
    full: 100_000,
    quick: 10_000,
    help: "targets of the fan-out schedule in materialize_targets",
  },
  distributions: {
    flags: "--distributions <list>",
    kind: "list",
    choices: SCHEDULER_BENCH_DISTRIBUTIONS,
    help: "the strategies materialize_targets measures, each in a fresh schema",
  },
  latenessSchedules: {
    flags: "--lateness-schedules <n>",
    kind: "count",
    full: 20,
    help: "every-second schedules in the lateness workload",
  },
  latenessSeconds: {
    flags: "--lateness-seconds <s>",
    kind: "count",
    full: 45,
    quick: 10,
    help: "how long they fire",
  },
  failoverSeconds: {
    flags: "--failover-seconds <s>",
    kind: "count",
    full: 60,
    quick: 25,
    help: "how long the failover workload runs (its leader is killed once, or twice from 50 s; 0 skips it)",
    zeroSkips: true,
  },
  concurrency: {
    ...COMMON_BENCH_FLAGS.concurrency,
    help: "worker concurrency in the lateness and failover workloads",
  },
} as const satisfies Record<string, BenchFlag>;

export type BenchFlags = Record<string, BenchFlag>;

/** What a flag resolves to: a list of its choices, a number, a boolean or text. */
type FlagValue<F> = F extends { kind: "boolean" }
  ? boolean
  : F extends { kind: "list"; choices: readonly (infer C)[] }
    ? C[]
    : F extends { kind: "count" | "number" }
      ? number
      : F extends { full: string }
        ? string
        : string | undefined;

export type BenchOptionsOf<T extends BenchFlags> = { -readonly [K in keyof T]: FlagValue<T[K]> };

export type QueueBenchOptions = BenchOptionsOf<typeof QUEUE_BENCH_FLAGS>;
export type SchedulerBenchOptions = BenchOptionsOf<typeof SCHEDULER_BENCH_FLAGS>;

/**
 * Declares the flags on a command (`global` ones only when `withGlobal`).
 * `subcommand`: the flags of a subcommand whose flags commander may hand to
 * this command instead (`rota bench scheduler --workloads …` reaches
 * `rota bench`'s --workloads): a list flag both have takes either's choices
 * here, and the harness that runs checks its own.
 */
export function addBenchFlags(
  command: Command,
  flags: BenchFlags,
  withGlobal: boolean,
  subcommand: BenchFlags = {},
): Command {
  for (const [key, flag] of Object.entries(flags)) {
    if (flag.global && !withGlobal) continue;
    const option = new Option(flag.flags, describe(flag));
    const other = subcommand[key];
    const accepted =
      flag.kind === "list" && other?.kind === "list"
        ? { ...flag, choices: [...(flag.choices ?? []), ...(other.choices ?? [])] }
        : flag;
    if (flag.kind !== "boolean") option.argParser((value: string) => parse(accepted, value));
    if (flag.env) option.env(flag.env);
    command.addOption(option);
  }
  return command;
}

/**
 * The options a command was given, with the defaults of a full or a --quick
 * run filled in. `values` is commander's `opts()`.
 */
export function resolveBenchOptions<T extends BenchFlags>(
  flags: T,
  values: Record<string, unknown>,
): BenchOptionsOf<T> {
  const quick = values.quick === true;
  const out: Record<string, unknown> = {};
  for (const [key, flag] of Object.entries(flags)) {
    const given = values[key];
    if (given !== undefined) {
      out[key] = given;
      continue;
    }
    const fallback = quick ? (flag.quick ?? flag.full) : flag.full;
    if (flag.kind === "boolean") out[key] = false;
    else if (flag.kind === "list") {
      out[key] = fallback === undefined ? [...(flag.choices ?? [])] : parse(flag, String(fallback));
    } else out[key] = fallback;
  }
  return out as BenchOptionsOf<T>;
}

/**
 * The command line that passes on what was given on the command line to
 * these commands (nearest first), for flags in `flags`; values that came from
 * the environment are left to it. A flag given to a command that `flags` does
 * not have is refused: `rota bench scheduler --jobs 5` would otherwise be
 * taken by `rota bench` and lost.
 */
export function benchArgs(flags: BenchFlags, commands: Command[]): string[] {
  const args: string[] = [];
  const seen = new Set<string>();
  for (const command of commands) {
    const values = command.opts();
    for (const key of Object.keys(values)) {
      if (command.getOptionValueSource(key) !== "cli" || seen.has(key)) continue;
      const flag = flags[key] as BenchFlag;
      const long = command.options.find((option) => option.attributeName() === key)?.long;
      if (!flag)
        (commands[0] ?? command).error(`error: ${long ?? key} is not an option of this benchmark`);
      seen.add(key);
      const name = flag.flags.split(" ")[0] as string;
      const value = values[key];
      if (flag.kind === "boolean") {
        if (value === true) args.push(name);
      } else args.push(name, Array.isArray(value) ? value.join(",") : String(value));
    }
  }
  return args;
}

function describe(flag: BenchFlag): string {
  const parts = [flag.help];
  if (flag.choices) parts.push(`from: ${flag.choices.join(", ")}`);
  if (flag.kind === "list" && flag.full === undefined) parts.push("default: all");
  if (flag.full !== undefined) {
    const quick =
      flag.quick !== undefined && flag.quick !== flag.full ? `; --quick: ${flag.quick}` : "";
    parts.push(`default: ${flag.full}${quick}`);
  }
  return `${parts[0]}${parts.length > 1 ? ` (${parts.slice(1).join("; ")})` : ""}`;
}

function parse(flag: BenchFlag, text: string): unknown {
  if (flag.kind === "count" || flag.kind === "number") {
    const n = Number(text);
    const whole = flag.kind === "count";
    const least = flag.zeroSkips ? 0 : Number.MIN_VALUE;
    if (text.trim() === "" || !Number.isFinite(n) || n < least || (whole && !Number.isInteger(n))) {
      throw new InvalidArgumentError(
        flag.zeroSkips
          ? "Expected a whole number, 0 to skip the workload."
          : `Expected a positive ${whole ? "whole number" : "number"}.`,
      );
    }
    return n;
  }
  if (flag.kind === "list") {
    const choices = flag.choices ?? [];
    const names = text
      .split(",")
      .map((item) => item.trim())
      .filter(Boolean);
    if (names.length === 0)
      throw new InvalidArgumentError(`It is empty; choose from ${choices.join(", ")}.`);
    for (const item of names) {
      if (!choices.includes(item)) {
        throw new InvalidArgumentError(`Unknown "${item}"; choose from ${choices.join(", ")}.`);
      }
    }
    // In the table's order, each once.
    return choices.filter((choice) => names.includes(choice));
  }
  return text;
}
