/**
 * `rota bench` / `npm run bench`: rota against graphile-worker, pg-boss,
 * BullMQ on Redis (when it answers) and on PostgreSQL, and a plain-pg insert
 * ceiling, on one PostgreSQL, through identical workloads. Each system runs
 * in a child process per configuration (bench/system-child.ts) under the Node
 * it needs (runtime.ts); the ceiling runs here. Progress goes to stderr; the
 * table, or with --json one JSON object, to stdout. See BENCHMARKS.md.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { QUEUE_BENCH_FLAGS, type QueueBenchOptions } from "../src/cli/bench-flags.js";
import type { SystemChildArguments, SystemChildMessage } from "./child-protocol.js";
import { runBenchmark } from "./harness.js";
import { tcpReachable } from "./net.js";
import { formatQueueReport, type SystemInfo } from "./report.js";
import { type BenchResult, type Measurement, type QueueWorkload, rounded } from "./results.js";
import { packageVersion, type Runtime, runtimeFor } from "./runtime.js";
import { isQueueSystem, SYSTEMS } from "./systems/index.js";
import type { BenchEnvironment, ConfigName, QueueSystemName } from "./systems/types.js";
import { withTimeout } from "./time.js";
import { insertCommitCeiling } from "./workloads/ceiling.js";
import { SETUP_DEADLINE_MS, STOP_DEADLINE_MS } from "./workloads/context.js";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
const SYSTEM_CHILD = fileURLToPath(new URL("./system-child.ts", import.meta.url));

runBenchmark({
  name: "rota bench",
  fromCheckout: "npm run bench -- [options]",
  description:
    "Runs rota and its peers and a plain pg insert ceiling through the same workloads on one PostgreSQL.",
  details: `Peers: graphile-worker and pg-boss (under Node 22, see bench/runtime.ts), BullMQ on
Redis (when it answers) and on PostgreSQL. Environment: BENCH_PGBOSS_BATCH_SIZE
(pg-boss tuned's batchSize, 100). See BENCHMARKS.md.`,
  flags: QUEUE_BENCH_FLAGS,
  savePrefix: "",
  measure: async (options, { databaseUrl, log }) => {
    const notes: string[] = [];
    const warn = (note: string) => {
      notes.push(note);
      log(note);
    };
    const results: BenchResult[] = [];
    const systems: Record<string, SystemInfo> = {};
    const record = (
      system: BenchResult["system"],
      config: ConfigName,
      workload: BenchResult["workload"],
      measurement: Measurement,
    ) => {
      const result: BenchResult = { system, config, workload, ...rounded(measurement) };
      results.push(result);
      log(`${system}/${config} ${workload}: ${describe(result)}`);
    };
    const [host = "127.0.0.1", port = "6379"] = options.redis.split(":");
    const env: BenchEnvironment = { databaseUrl, redis: { host, port: Number(port) } };

    if (options.systems.includes("pg") && options.workloads.includes("insert_commit_ceiling")) {
      systems.pg = { version: packageVersion("pg"), node: process.version };
      log("pg/default insert_commit_ceiling ...");
      try {
        const measurement = await insertCommitCeiling({ env, options, log, warn });
        record("pg", "default", "insert_commit_ceiling", measurement);
      } catch (error) {
        warn(`pg insert_commit_ceiling failed: ${message(error)}`);
      }
    }

    const workloads = options.workloads.filter(
      (w): w is QueueWorkload => w !== "insert_commit_ceiling",
    );
    for (const system of options.systems.filter(isQueueSystem)) {
      const own = workloads.filter((w) => ONLY_ON[w]?.includes(system) ?? true);
      for (const workload of workloads.filter((w) => !own.includes(w))) {
        log(`${system} skips ${workload} (${ONLY_ON[workload]?.join(", ")} only)`);
      }
      if (own.length === 0) continue;
      if (system === "bullmq" && !(await tcpReachable(env.redis.host, env.redis.port))) {
        warn(`bullmq skipped: no Redis at ${options.redis} (set --redis or BENCH_REDIS=host:port)`);
        continue;
      }
      const entry = SYSTEMS[system];
      const runtime = runtimeFor(entry.package, log);
      if (typeof runtime === "string") {
        warn(`${system} skipped: ${runtime}`);
        continue;
      }
      systems[system] = { version: packageVersion(entry.package), node: runtime.version };
      for (const config of entry.configs.filter((c) => options.configs.includes(c))) {
        const args: SystemChildArguments = { system, config, workloads: own, options, env };
        await runSystem(args, runtime, {
          result: (workload, measurement) => record(system, config, workload, measurement),
          note: (text) => notes.push(text),
          warn,
        });
      }
    }
    return { systems, results, notes };
  },
  format: formatQueueReport,
});

/**
 * Workloads only some systems run; the others skip them, as the queue
 * systems skip the ceiling. process_limited needs a limit on a queue's
 * running jobs across worker processes, which only rota's adapter sets.
 */
const ONLY_ON: Partial<Record<QueueWorkload, readonly QueueSystemName[]>> = {
  process_limited: ["rota"],
};

/** How long one system's child may run before it is killed: every workload's worst case. */
function childBudgetMs(options: QueueBenchOptions, workloads: number): number {
  const workload =
    SETUP_DEADLINE_MS +
    3 * STOP_DEADLINE_MS +
    1000 * (options.processTimeout + options.latencySeconds + options.settleSeconds) +
    120_000;
  return workloads * workload;
}

/** Runs one system's workloads in a child under `runtime`'s Node; resolves when it exits. */
async function runSystem(
  args: SystemChildArguments,
  runtime: Runtime,
  on: {
    result: (workload: QueueWorkload, measurement: Measurement) => void;
    note: (text: string) => void;
    warn: (text: string) => void;
  },
): Promise<void> {
  const name: `${QueueSystemName}/${ConfigName}` = `${args.system}/${args.config}`;
  // The child's stdout goes to our stderr: stdout is kept for the report.
  const child: ChildProcess = spawn(
    runtime.execPath,
    ["--import", "tsx", SYSTEM_CHILD, JSON.stringify(args)],
    { cwd: REPO_ROOT, stdio: ["ignore", 2, 2, "ipc"] },
  );
  child.on("message", (message: SystemChildMessage) => {
    if (message.type === "result") on.result(message.workload, message.measurement);
    else on.note(message.text);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => resolve(code));
    child.once("error", (error) => {
      on.warn(`${name} did not start: ${error.message}`);
      resolve(null);
    });
  });
  const outcome = await withTimeout(exited, childBudgetMs(args.options, args.workloads.length));
  if (outcome === "timeout") {
    on.warn(`${name} was still running after its time budget; killed`);
    child.kill("SIGKILL");
    await exited;
  } else if (outcome !== 0 && outcome !== null) {
    on.warn(`${name} exited with code ${outcome}`);
  }
}

function describe(result: BenchResult): string {
  if (result.jobs_per_s !== undefined) {
    const capped =
      result.complete === false ? ` (capped: ${result.jobs} jobs in ${result.seconds} s)` : "";
    const limited =
      result.max_concurrency === undefined
        ? ""
        : `, max concurrency ${result.max_concurrency} (limit ${result.concurrency_limit}${result.limit_exceeded ? ", EXCEEDED" : ""})`;
    return `${result.jobs_per_s} jobs/s${capped}${limited}`;
  }
  const lost = result.lost ? `, ${result.lost} lost` : "";
  return `p50 ${result.p50_ms} ms, p95 ${result.p95_ms} ms, p99 ${result.p99_ms} ms (${result.jobs} samples${lost})`;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
