import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { registerBenchScheduler } from "./bench-scheduler.js";
import { databaseUrlFrom, type GlobalOptions } from "./context.js";

interface BenchCommandOptions {
  json?: boolean;
  quick?: boolean;
  systems?: string;
  workloads?: string;
  configs?: string;
  jobs?: string;
}

/**
 * `rota bench`: runs the benchmark harness in bench/ (rota against
 * graphile-worker, pg-boss, BullMQ and a plain-pg ceiling). The harness and
 * its peers are development dependencies, so this works from a checkout: it
 * starts `node --import tsx bench/run.ts` in the repository and exits with its
 * code. Progress goes to stderr, the table or JSON to stdout.
 */
export function registerBench(program: Command): void {
  const bench = program
    .command("bench")
    .description(
      "benchmark rota against graphile-worker, pg-boss and BullMQ on one PostgreSQL (from a checkout)",
    )
    .option("--json", "print one JSON object")
    .option("--quick", "a smoke run: small sizes, each system's default config only")
    .option("--systems <list>", "comma-separated: rota,graphile-worker,pg-boss,bullmq,pg")
    .option(
      "--workloads <list>",
      "comma-separated: enqueue_single_1,enqueue_single_10,enqueue_bulk,process_1proc,process_2proc,latency,insert_commit_ceiling",
    )
    .option("--configs <list>", "default,tuned (peers run both unless --quick)")
    .option("--jobs <n>", "jobs for enqueue_bulk and process_* (default 20000)")
    .action(async (options: BenchCommandOptions, command: Command) => {
      process.exitCode = await runBench(options, command.optsWithGlobals<GlobalOptions>());
    });
  registerBenchScheduler(bench);
}

/** The repository root: this file is dist/cli/bench.js (or src/cli/bench.ts). */
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

function runBench(options: BenchCommandOptions, globals: GlobalOptions): Promise<number> {
  const args: string[] = [];
  if (options.json) args.push("--json");
  if (options.quick) args.push("--quick");
  if (options.systems) args.push("--systems", options.systems);
  if (options.workloads) args.push("--workloads", options.workloads);
  if (options.configs) args.push("--configs", options.configs);
  if (options.jobs) args.push("--jobs", options.jobs);
  return runHarness("bench/run.ts", "rota bench", args, globals);
}

/**
 * Runs a benchmark script of the checkout (`path` from the repository root)
 * with tsx, passing the database URL on, and resolves with its exit code.
 */
export function runHarness(
  path: string,
  command: string,
  args: string[],
  globals: GlobalOptions,
): Promise<number> {
  const script = `${REPO_ROOT}${path}`;
  if (!existsSync(script)) {
    process.stderr.write(
      `rota: the benchmark harness (${path}) is not in this installation; run \`${command}\` from a rota checkout after \`npm install\`.\n`,
    );
    return Promise.resolve(1);
  }
  const env = { ...process.env };
  const url = databaseUrlFrom(globals);
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
