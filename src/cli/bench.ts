import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import {
  addBenchFlags,
  type BenchFlags,
  benchArgs,
  QUEUE_BENCH_FLAGS,
  SCHEDULER_BENCH_FLAGS,
} from "./bench-flags.js";
import { databaseUrlFrom, type GlobalOptions } from "./context.js";

/**
 * `rota bench` and `rota bench scheduler`: run the benchmark harness in
 * bench/ (rota against its peers; the scheduler alone). The harness and the
 * peers are development dependencies, so these work from a checkout: each
 * starts `node --import tsx bench/…/run.ts` in the repository with the flags
 * it was given (declared once, in bench-flags.ts) and exits with its code.
 * Progress goes to stderr, the table or JSON to stdout.
 */
export function registerBench(program: Command): void {
  const bench = addBenchFlags(
    program
      .command("bench")
      .description(
        "benchmark rota against graphile-worker, pg-boss and BullMQ (Redis and PostgreSQL) on one PostgreSQL (from a checkout)",
      ),
    QUEUE_BENCH_FLAGS,
    false,
    SCHEDULER_BENCH_FLAGS,
  ).action(async (_options: unknown, command: Command) => {
    process.exitCode = await run("bench/run.ts", "rota bench", QUEUE_BENCH_FLAGS, [command]);
  });
  const scheduler = bench
    .command("scheduler")
    .description(
      "benchmark the scheduler: one tick materializing 10,000 due of 100,000 schedules, one planning a fan-out cadence of 100,000 targets, and firing lateness (from a checkout)",
    );
  addBenchFlags(scheduler, SCHEDULER_BENCH_FLAGS, false).action(
    async (_options: unknown, command: Command) => {
      // A flag both commands have may be taken by `rota bench` (commander
      // reads a parent's options after its subcommand too): either counts.
      process.exitCode = await run(
        "bench/scheduler/run.ts",
        "rota bench scheduler",
        SCHEDULER_BENCH_FLAGS,
        [command, bench],
      );
    },
  );
}

/** The repository root: this file is dist/cli/bench.js (or src/cli/bench.ts). */
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Runs a benchmark script of the checkout (`path` from the repository root)
 * with tsx, passing the flags and the database URL on, and resolves with its
 * exit code.
 */
function run(path: string, name: string, flags: BenchFlags, commands: Command[]): Promise<number> {
  const args = benchArgs(flags, commands);
  const script = `${REPO_ROOT}${path}`;
  if (!existsSync(script)) {
    process.stderr.write(
      `rota: the benchmark harness (${path}) is not in this installation; run \`${name}\` from a rota checkout after \`npm install\`.\n`,
    );
    return Promise.resolve(1);
  }
  const env = { ...process.env };
  const url = databaseUrlFrom((commands[0] as Command).optsWithGlobals<GlobalOptions>());
  if (url !== undefined) env.DATABASE_URL = url;
  return new Promise((resolve) => {
    // cwd is the repository so that `--import tsx` resolves to its tsx.
    const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
      cwd: REPO_ROOT,
      env,
      stdio: "inherit",
    });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    child.once("error", (error) => {
      process.stderr.write(`rota: could not start the benchmark: ${error.message}\n`);
      resolve(1);
    });
    child.once("exit", (code, signal) => {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      resolve(code ?? (signal === "SIGINT" ? 130 : 1));
    });
  });
}
