import type { Command } from "commander";
import { runHarness } from "./bench.js";
import type { GlobalOptions } from "./context.js";

interface BenchSchedulerOptions {
  json?: boolean;
  schedules?: string;
  due?: string;
  rounds?: string;
  latenessSchedules?: string;
  latenessSeconds?: string;
  concurrency?: string;
}

/**
 * `rota bench scheduler`: the scheduler's benchmark in bench/scheduler/
 * (materialization of the due schedules among many in one orchestrator tick,
 * and the lateness of every-second schedules with a worker running). Like
 * `rota bench`, it runs from a checkout: `node --import tsx
 * bench/scheduler/run.ts` in the repository, exiting with its code.
 */
export function registerBenchScheduler(bench: Command): void {
  bench
    .command("scheduler")
    .description(
      "benchmark the scheduler: one tick materializing 10,000 due of 100,000 schedules, and firing lateness (from a checkout)",
    )
    .option("--json", "print one JSON object")
    .option("--schedules <n>", "schedules in the large materialization workload (default 100000)")
    .option("--due <n>", "how many of them are due in the measured tick (default 10000)")
    .option("--rounds <n>", "measured ticks per materialization workload (default 3)")
    .option(
      "--lateness-schedules <n>",
      "every-second schedules in the lateness workload (default 20)",
    )
    .option("--lateness-seconds <s>", "how long they fire (default 45)")
    .option("--concurrency <n>", "worker concurrency in the lateness workload (default 10)")
    .action(async (options: BenchSchedulerOptions, command: Command) => {
      // `--json` may land on `rota bench` (it has the same flag): either counts.
      const globals = command.optsWithGlobals<GlobalOptions & { json?: boolean }>();
      const args: string[] = [];
      if (options.json || globals.json) args.push("--json");
      const pass = (flag: string, value: string | undefined) => {
        if (value !== undefined) args.push(flag, value);
      };
      pass("--schedules", options.schedules);
      pass("--due", options.due);
      pass("--rounds", options.rounds);
      pass("--lateness-schedules", options.latenessSchedules);
      pass("--lateness-seconds", options.latenessSeconds);
      pass("--concurrency", options.concurrency);
      process.exitCode = await runHarness(
        "bench/scheduler/run.ts",
        "rota bench scheduler",
        args,
        globals,
      );
    });
}
