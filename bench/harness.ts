/**
 * What both benchmarks (bench/run.ts, bench/scheduler/run.ts) do around their
 * workloads: parse the flags (declared once, in src/cli/bench-flags.ts),
 * choose the database, describe the machine, print the table or the JSON,
 * save it to bench/results/ when asked, stop on a signal, exit with a code.
 */
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import {
  addBenchFlags,
  type BenchFlags,
  type BenchOptionsOf,
  resolveBenchOptions,
} from "../src/cli/bench-flags.js";
import { openDatabase, serverVersion } from "./database.js";
import { nowMs, timerStalls } from "./time.js";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
const RESULTS = "bench/results";

/** What every report starts with: when, which code, on what. */
export interface ReportHeader {
  /** When the run started (ISO 8601, UTC). */
  date: string;
  /** `git describe --always --dirty` of the checkout. */
  commit: string;
  postgres: string;
  node: string;
  machine: {
    cpus: number;
    memory_gib: number;
    /** An idle 10 ms timer for 2 s before the run: its longest gap, and the gaps over 50 ms. */
    timer_stalls: { max_ms: number; over_50ms: number };
  };
  /** The options of the run (snake_case), and where the database came from. */
  settings: Record<string, unknown>;
}

export interface MeasureContext {
  databaseUrl: string;
  log: (line: string) => void;
}

export interface Benchmark<T extends BenchFlags, Body extends object> {
  /** As the CLI names it: "rota bench", "rota bench scheduler". */
  name: string;
  /** How to run it from a checkout without the CLI. */
  fromCheckout: string;
  /** One line for --help, and what it prints after the options. */
  description: string;
  details: string;
  flags: T;
  /** Saved runs are named <date>-<savePrefix><run>.json. */
  savePrefix: string;
  /** A problem with the options together (one flag against another), or nothing. */
  check?: (options: BenchOptionsOf<T>) => string | undefined;
  measure: (options: BenchOptionsOf<T>, context: MeasureContext) => Promise<Body>;
  format: (report: ReportHeader & Body) => string;
}

/** Runs a benchmark as this process's whole life; exits with its code. */
export function runBenchmark<T extends BenchFlags, Body extends object>(
  benchmark: Benchmark<T, Body>,
): void {
  const log = (line: string) => process.stderr.write(`${benchmark.name}: ${line}\n`);
  run(benchmark, log).then(
    // Exits explicitly: a system that failed to stop may still hold handles open.
    (code) => process.stdout.write("", () => process.exit(code)),
    (error) => {
      log(error instanceof Error ? (error.stack ?? error.message) : String(error));
      process.exit(1);
    },
  );
}

async function run<T extends BenchFlags, Body extends object>(
  benchmark: Benchmark<T, Body>,
  log: (line: string) => void,
): Promise<number> {
  const program = addBenchFlags(
    new Command(benchmark.name).description(benchmark.description),
    benchmark.flags,
    true,
  )
    .addHelpText("after", `\n${benchmark.details}\n\nFrom a checkout: ${benchmark.fromCheckout}`)
    .showHelpAfterError()
    .exitOverride();
  let options: BenchOptionsOf<T>;
  let savePath: string | undefined;
  try {
    program.parse(process.argv);
    options = resolveBenchOptions(benchmark.flags, program.opts());
    const problem = benchmark.check?.(options);
    if (problem) program.error(`error: ${problem}`);
    savePath = resultsPath(options.save, benchmark.savePrefix, program);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    throw error;
  }

  const began = nowMs();
  const date = new Date().toISOString();
  const database = await openDatabase(options.databaseUrl as string | undefined, log);
  // One signal stops the database and exits; repeats (a terminal's Ctrl-C reaches
  // both `rota bench` and this process, and rota forwards it) are ignored.
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log("interrupted; stopping");
    void database.stop().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const header: ReportHeader = {
      date,
      commit: describeCommit(),
      postgres: await serverVersion(database.url),
      node: process.version,
      machine: {
        cpus: availableParallelism(),
        memory_gib: Number((totalmem() / 2 ** 30).toFixed(1)),
        timer_stalls: await timerStalls(2_000),
      },
      settings: { ...settings(options), database: database.source },
    };
    log(`PostgreSQL ${header.postgres}; ${JSON.stringify(header.settings)}`);
    const body = await benchmark.measure(options, { databaseUrl: database.url, log });
    const report = { ...header, ...body };
    log(`done in ${((nowMs() - began) / 1000).toFixed(1)} s`);
    const json = `${JSON.stringify(report, null, 2)}\n`;
    if (savePath) {
      writeFileSync(savePath, json, { flag: "wx" });
      log(`saved to ${savePath.slice(REPO_ROOT.length)}`);
    }
    process.stdout.write(options.json ? json : benchmark.format(report));
    return 0;
  } finally {
    await database.stop();
  }
}

/** bench/results/<date>-<prefix><run>.json for --save <run>, refused if taken or oddly named. */
function resultsPath(run: unknown, prefix: string, program: Command): string | undefined {
  if (typeof run !== "string") return undefined;
  if (!/^[a-z0-9][a-z0-9-]*$/.test(run)) {
    program.error(
      `error: --save wants a run name of lower-case letters, digits and dashes, got "${run}"`,
    );
  }
  const path = `${REPO_ROOT}${RESULTS}/${new Date().toISOString().slice(0, 10)}-${prefix}${run}.json`;
  if (existsSync(path)) program.error(`error: ${path.slice(REPO_ROOT.length)} exists already`);
  return path;
}

/** The options worth recording, in snake_case: not how to print or where to save, nor the URL. */
function settings(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    // A flag left unset is left out, not recorded as undefined.
    if (["json", "save", "databaseUrl"].includes(key) || value === undefined) continue;
    out[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = value;
  }
  return out;
}

function describeCommit(): string {
  try {
    return execFileSync("git", ["describe", "--always", "--dirty"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "unknown";
  }
}

/** The lines above each table: the machine and the settings. */
export function formatHeader(report: ReportHeader): string[] {
  const stalls = report.machine.timer_stalls;
  return [
    `${report.date}, ${report.commit}: PostgreSQL ${report.postgres}; node ${report.node}; ${report.machine.cpus} CPUs, ${report.machine.memory_gib} GiB`,
    `idle 10 ms timer over 2 s: longest stall ${stalls.max_ms} ms, ${stalls.over_50ms} stalls over 50 ms (a quiet machine: a few ms, none)`,
    `settings: ${Object.entries(report.settings)
      .map(([key, value]) => `${key}=${Array.isArray(value) ? value.join(",") : value}`)
      .join(" ")}`,
  ];
}
