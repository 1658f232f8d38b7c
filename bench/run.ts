/**
 * `rota bench` / `npm run bench`: rota against graphile-worker, pg-boss,
 * BullMQ (when Redis answers) and a plain-pg insert ceiling, on one
 * PostgreSQL, through identical workloads. Progress goes to stderr; the table,
 * or with --json one JSON object, to stdout. See BENCHMARKS.md.
 */
import { availableParallelism, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { tcpReachable } from "./net.js";
import { type BenchOptions, parseOptions, USAGE, UsageError } from "./options.js";
import { formatTable, type Report } from "./report.js";
import { type BenchResult, type Measurement, rounded, type WorkloadName } from "./results.js";
import { CONFIGS, isQueueSystem, systemFactory } from "./systems/index.js";
import type {
  BenchEnvironment,
  BenchSystem,
  ConfigName,
  QueueSystemName,
  SystemFactory,
} from "./systems/types.js";
import { nowMs, timerStalls, withDeadline } from "./time.js";
import { insertCommitCeiling } from "./workloads/ceiling.js";
import { STOP_DEADLINE_MS, type WorkloadContext } from "./workloads/context.js";
import { enqueueBulk, enqueueSingle } from "./workloads/enqueue.js";
import { latency } from "./workloads/latency.js";
import { processOneProcess, processTwoProcesses } from "./workloads/process.js";

type QueueWorkload = Exclude<WorkloadName, "insert_commit_ceiling">;

const WORKLOADS: Record<
  QueueWorkload,
  (system: BenchSystem, context: WorkloadContext) => Promise<Measurement>
> = {
  enqueue_single_1: (system, context) => enqueueSingle(system, 1, context),
  enqueue_single_10: (system, context) =>
    enqueueSingle(system, context.options.concurrency, context),
  enqueue_bulk: enqueueBulk,
  process_1proc: processOneProcess,
  process_2proc: processTwoProcesses,
  latency,
};

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
const SETUP_DEADLINE_MS = 120_000;

type RecordResult = (
  system: BenchResult["system"],
  config: ConfigName,
  workload: WorkloadName,
  m: Measurement,
) => void;

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    const parsed = parseOptions(process.argv.slice(2));
    if (parsed === "help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    options = parsed;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench: ${error.message}\n\n${USAGE}\n`);
    return 2;
  }

  const began = nowMs();
  const database = await openDatabase();
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
    const notes: string[] = [];
    const warn = (note: string) => {
      notes.push(note);
      log(note);
    };
    const env: BenchEnvironment = { databaseUrl: database.url, redis: options.redis };
    const context: WorkloadContext = { env, options, log, warn };
    const report: Report = {
      postgres: await serverVersion(database.url),
      node: process.version,
      machine: {
        cpus: availableParallelism(),
        memory_gib: Number((totalmem() / 2 ** 30).toFixed(1)),
        timer_stalls: await timerStalls(2_000),
      },
      settings: {
        jobs: options.jobs,
        concurrency: options.concurrency,
        single_seconds: options.singleSeconds,
        latency_seconds: options.latencySeconds,
        latency_rate: options.rate,
        settle_seconds: options.settleSeconds,
        process_timeout_seconds: options.processTimeoutSeconds,
        database: database.embedded ? "embedded" : "DATABASE_URL",
      },
      results: [],
      notes,
    };
    log(`PostgreSQL ${report.postgres}; ${JSON.stringify(report.settings)}`);
    const record: RecordResult = (system, config, workload, measurement) => {
      const result: BenchResult = { system, config, workload, ...rounded(measurement) };
      report.results.push(result);
      log(`${system}/${config} ${workload}: ${describe(result)}`);
    };

    if (options.systems.includes("pg") && options.workloads.includes("insert_commit_ceiling")) {
      log("pg/default insert_commit_ceiling ...");
      try {
        record("pg", "default", "insert_commit_ceiling", await insertCommitCeiling(context));
      } catch (error) {
        warn(`pg insert_commit_ceiling failed: ${message(error)}`);
      }
    }

    const workloads = options.workloads.filter(
      (w): w is QueueWorkload => w !== "insert_commit_ceiling",
    );
    for (const system of options.systems.filter(isQueueSystem)) {
      if (workloads.length === 0) break;
      if (system === "bullmq" && !(await tcpReachable(options.redis.host, options.redis.port))) {
        warn(
          `bullmq skipped: no Redis at ${options.redis.host}:${options.redis.port} (set BENCH_REDIS=host:port)`,
        );
        continue;
      }
      for (const config of CONFIGS[system].filter((c) => options.configs.includes(c))) {
        await runSystem(system, config, workloads, context, record);
      }
    }

    log(`done in ${((nowMs() - began) / 1000).toFixed(1)} s`);
    if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else process.stdout.write(formatTable(report));
    return 0;
  } finally {
    await database.stop();
  }
}

/**
 * Runs each workload on fresh state (setup before, teardown after). A system
 * whose setup fails is skipped with a note; one that hangs in stop or teardown
 * is left behind with a note, so one broken system cannot stall the run.
 */
async function runSystem(
  name: QueueSystemName,
  config: ConfigName,
  workloads: QueueWorkload[],
  context: WorkloadContext,
  record: RecordResult,
): Promise<void> {
  let factory: SystemFactory;
  try {
    factory = await systemFactory(name, config);
  } catch (error) {
    context.warn(`${name}/${config} skipped: its adapter did not load: ${message(error)}`);
    return;
  }
  const teardown = async (system: BenchSystem, after: string) => {
    try {
      await withDeadline(
        system.teardown(),
        STOP_DEADLINE_MS,
        `${name}/${config} teardown after ${after}`,
      );
    } catch (error) {
      context.warn(message(error));
    }
  };
  for (const workload of workloads) {
    log(`${name}/${config} ${workload} ...`);
    const began = nowMs();
    const system = factory(context.env);
    try {
      await withDeadline(system.setup(), SETUP_DEADLINE_MS, `${name}/${config} setup`);
    } catch (error) {
      context.warn(`${name}/${config} skipped: setup failed: ${message(error)}`);
      await teardown(system, "a failed setup");
      return;
    }
    try {
      record(name, config, workload, await WORKLOADS[workload](system, context));
    } catch (error) {
      context.warn(`${name}/${config} ${workload} failed: ${message(error)}`);
    } finally {
      await teardown(system, workload);
      log(
        `${name}/${config} ${workload} took ${((nowMs() - began) / 1000).toFixed(1)} s with setup and teardown`,
      );
    }
  }
}

interface Database {
  url: string;
  embedded: boolean;
  stop(): Promise<void>;
}

/** DATABASE_URL if set, else rota's embedded PostgreSQL (data in .rota/bench-pgdata). */
async function openDatabase(): Promise<Database> {
  const url = process.env.DATABASE_URL;
  if (url) return { url, embedded: false, stop: async () => {} };
  log("no DATABASE_URL: starting the embedded PostgreSQL (data in .rota/bench-pgdata)");
  const { startEmbeddedPostgres } = await import("../src/dev/embedded.js");
  const server = await startEmbeddedPostgres({ dataDir: `${REPO_ROOT}.rota/bench-pgdata` });
  return { url: server.url, embedded: true, stop: () => server.stop() };
}

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ server_version: string }>("show server_version");
    return result.rows[0]?.server_version ?? "unknown";
  } finally {
    await client.end();
  }
}

function describe(result: BenchResult): string {
  if (result.jobs_per_s !== undefined) {
    const capped =
      result.complete === false ? ` (capped: ${result.jobs} jobs in ${result.seconds} s)` : "";
    return `${result.jobs_per_s} jobs/s${capped}`;
  }
  const lost = result.lost ? `, ${result.lost} lost` : "";
  return `p50 ${result.p50_ms} ms, p95 ${result.p95_ms} ms, p99 ${result.p99_ms} ms (${result.jobs} samples${lost})`;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// Exits explicitly: a system that failed to stop may still hold handles open.
main().then(
  (code) => process.stdout.write("", () => process.exit(code)),
  (error) => {
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
