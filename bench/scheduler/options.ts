import { parseArgs } from "node:util";

export interface SchedulerBenchOptions {
  json: boolean;
  /** Schedules in the large materialization workload (the 100,000). */
  schedules: number;
  /** Of those, how many have an occurrence come due (the 10,000). */
  due: number;
  /** Measured ticks per materialization workload (each after a fresh minute came due). */
  rounds: number;
  /** Lateness: how many every-second schedules fire, and for how long. */
  latenessSchedules: number;
  latenessSeconds: number;
  /** Lateness: worker concurrency. */
  concurrency: number;
}

const DEFAULTS = {
  schedules: 100_000,
  due: 10_000,
  rounds: 3,
  latenessSchedules: 20,
  latenessSeconds: 45,
  concurrency: 10,
};

export const USAGE = `usage: rota bench scheduler [options]   (from a checkout: node --import tsx bench/scheduler/run.ts [options])

Measures rota's scheduler on one PostgreSQL, in a fresh schema it drops afterwards:
  materialize_<due>_of_<schedules>  one orchestrator tick materializing the due schedules among many
  materialize_<due>_of_<due>        the same with no schedules that are not due (the cost must not grow)
  lateness                          handler start minus planned run time, every-second schedules, one worker

  --json                    print one JSON object on stdout (progress goes to stderr)
  --schedules <n>           schedules in the large materialization workload (default ${DEFAULTS.schedules})
  --due <n>                 how many of them are due in the measured tick (default ${DEFAULTS.due})
  --rounds <n>              measured ticks per materialization workload (default ${DEFAULTS.rounds})
  --lateness-schedules <n>  every-second schedules in the lateness workload (default ${DEFAULTS.latenessSchedules})
  --lateness-seconds <s>    how long they fire (default ${DEFAULTS.latenessSeconds})
  --concurrency <n>         worker concurrency in the lateness workload (default ${DEFAULTS.concurrency})
  -h, --help                this help

Environment: DATABASE_URL (default postgres://root@127.0.0.1:5432/test).`;

export class UsageError extends Error {}

export function parseSchedulerOptions(argv: string[]): SchedulerBenchOptions | "help" {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(argv).values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help) return "help";
  const count = (flag: string, text: string | undefined, fallback: number) => {
    if (text === undefined || text === "") return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n <= 0)
      throw new UsageError(
        `--${flag} must be a positive whole number, got ${JSON.stringify(text)}`,
      );
    return n;
  };
  const options: SchedulerBenchOptions = {
    json: values.json ?? false,
    schedules: count("schedules", values.schedules, DEFAULTS.schedules),
    due: count("due", values.due, DEFAULTS.due),
    rounds: count("rounds", values.rounds, DEFAULTS.rounds),
    latenessSchedules: count(
      "lateness-schedules",
      values["lateness-schedules"],
      DEFAULTS.latenessSchedules,
    ),
    latenessSeconds: count(
      "lateness-seconds",
      values["lateness-seconds"],
      DEFAULTS.latenessSeconds,
    ),
    concurrency: count("concurrency", values.concurrency, DEFAULTS.concurrency),
  };
  if (options.due > options.schedules)
    throw new UsageError(`--due (${options.due}) cannot exceed --schedules (${options.schedules})`);
  return options;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      json: { type: "boolean" },
      schedules: { type: "string" },
      due: { type: "string" },
      rounds: { type: "string" },
      "lateness-schedules": { type: "string" },
      "lateness-seconds": { type: "string" },
      concurrency: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}
