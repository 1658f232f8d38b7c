/**
 * `npm run chaos -- [--minutes M] [--seed N] [--json] [--keep]`: rota under
 * faults, checked end to end (issue 15).
 *
 * On a PostgreSQL of its own (rota's embedded server, a data folder under
 * .rota/chaos and a free port: never a shared server), three `rota worker`
 * and two `rota orchestrator` processes run per-second schedules (catch-up
 * "all", overlap "queue" and "skip"), a fanned-out schedule, plain, delayed
 * and retrying jobs, a limited queue and per-key limits, change capture of a
 * steadily updated table, and batches with a fan-in callback. For M minutes
 * the run kills processes with SIGKILL (the leader among them) and starts
 * replacements, restarts PostgreSQL, and terminates rota's connections.
 * Then it stops the faults, lets everything drain, and checks what happened
 * (chaos-checks.ts says what). It prints one JSON object (--json) or a
 * summary, and exits 1 on any violation.
 *
 * The seed (printed, and in the report) replays the same plan of faults and
 * load. Progress goes to stderr; each process's output to a log file under
 * the run's folder, kept with the server's data when the run fails (or with
 * --keep).
 */
import { chmodSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { Rota } from "../../src/client.js";
import { check } from "./chaos-checks.js";
import { drain } from "./chaos-drain.js";
import { ChaosError, type ChaosErrorCode } from "./chaos-error.js";
import { ChaosFaults, planFaults } from "./chaos-faults.js";
import { ChaosLoad } from "./chaos-load.js";
import { buildReport, formatReport } from "./chaos-report.js";
import { ChaosServer } from "./chaos-server.js";
import { ROTA_SCHEMA, setUp } from "./chaos-setup.js";
import { type ProcessKind, RotaProcesses } from "./rota-processes.js";
import { SeededRandom } from "./seeded-random.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PROCESSES: Record<ProcessKind, number> = { worker: 3, orchestrator: 2 };
/** Before the faults: long enough for a leader, the first fan-out cadence and some of everything. */
const WARM_UP_MS = 15_000;
/** The longest the drain may take before what is still owed counts as lost. */
const DRAIN_MS = 180_000;

interface Options {
  minutes: number;
  seed: number;
  json: boolean;
  keep: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: "string", default: "5" },
      seed: { type: "string" },
      json: { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
    },
    strict: true,
  });
  const minutes = Number(values.minutes);
  if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) {
    throw new ChaosError(
      "CHAOS_BAD_OPTION",
      `--minutes must be a number of minutes above 0 (fractions allowed: 0.5 is 30 s), got ${JSON.stringify(values.minutes)}.`,
    );
  }
  const seed = values.seed === undefined ? Date.now() % 1_000_000 : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new ChaosError(
      "CHAOS_BAD_OPTION",
      `--seed must be a whole number from 0 to 4294967295, got ${JSON.stringify(values.seed)}.`,
    );
  }
  return { minutes, seed, json: values.json, keep: values.keep };
}

const log = (line: string) => process.stderr.write(`chaos: ${line}\n`);

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const began = Date.now();
  const random = new SeededRandom(options.seed);
  const chaosMs = Math.round(options.minutes * 60_000);
  const runDir = join(REPO_ROOT, ".rota", "chaos", `seed-${options.seed}-${began}`);
  const logDir = join(runDir, "logs");
  mkdirSync(logDir, { recursive: true });
  // As root the server runs as "postgres", which must be let through every
  // folder above its data (embedded.ts refuses to start otherwise).
  for (const dir of [join(REPO_ROOT, ".rota"), join(REPO_ROOT, ".rota", "chaos"), runDir]) {
    chmodSync(dir, 0o755);
  }
  log(`seed ${options.seed}, ${options.minutes} min of faults; logs in ${logDir}`);

  const server = await ChaosServer.start(join(runDir, "pgdata"), log);
  log(`PostgreSQL of its own on port ${server.port}`);
  // The run's own connections: not named "rota", so the terminations spare them.
  const pool = new pg.Pool({
    connectionString: server.url,
    application_name: "chaos driver",
    max: 4,
  });
  // A connection lost while held (a restart in the middle of a transaction)
  // fails the statement that follows; it must not end the run.
  pool.on("error", () => {});
  pool.on("connect", (client) => {
    client.on("error", () => {});
  });
  // Its enqueues go through rota's pool like an application's, and face the terminations.
  const rota = new Rota({ connection: server.url, schema: ROTA_SCHEMA });
  const processes = new RotaProcesses({
    databaseUrl: server.url,
    schema: ROTA_SCHEMA,
    logDir,
    log,
  });
  let ok = false;
  try {
    const setup = await pool.connect();
    try {
      await setUp(rota, setup);
    } catch (cause) {
      throw new ChaosError("CHAOS_SETUP_FAILED", `setting up failed: ${(cause as Error).message}`, {
        cause,
      });
    } finally {
      setup.release();
    }
    await topUp(processes);
    const load = new ChaosLoad(rota, pool, random.fork("load"));
    load.start();
    log(`warming up for ${WARM_UP_MS / 1000} s`);
    await sleep(WARM_UP_MS);

    const chaosStart = Date.now();
    const plan = planFaults(chaosMs, random.fork("faults"));
    log(`faults for ${chaosMs / 1000} s: ${plan.length} planned`);
    const faults = new ChaosFaults(plan, server, processes, rota, log);
    await Promise.all([faults.play(), sleep(chaosMs)]);
    faults.stop();
    await load.stop();
    const chaosEnd = Date.now();
    log("faults and load stopped; draining");
    await topUp(processes);
    const owedNow = await drain(pool, chaosEnd, DRAIN_MS, log);
    const drained = Date.now();
    // Everything has drained, only the schedules still fire: a process
    // spinning now is a busy loop.
    await faults.sampleIdle(3_000);
    const stuckAtStop = await processes.stopAll(30_000);
    const client = await pool.connect();
    let checks: Awaited<ReturnType<typeof check>>;
    try {
      checks = await check({
        client,
        chaosStart,
        chaosEnd,
        processes: processes.all,
        crashes: processes.crashes(),
        stuckAtStop,
        kills: faults.kills,
        serverFaults: server.faults,
        cpu: faults.cpu,
      });
    } finally {
      client.release();
    }
    const report = buildReport({
      seed: options.seed,
      minutes: options.minutes,
      seconds: {
        setup: seconds(chaosStart - began),
        chaos: seconds(chaosEnd - chaosStart),
        drain: seconds(drained - chaosEnd),
        total: seconds(Date.now() - began),
      },
      kills: faults.kills,
      serverFaults: server.faults,
      notPlayed: faults.skipped,
      load: load.counts,
      owed: owedNow,
      checks,
    });
    process.stdout.write(
      options.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`,
    );
    ok = report.ok;
    return ok ? 0 : 1;
  } finally {
    await processes.stopAll(10_000);
    await rota.close().catch(() => {});
    await pool.end().catch(() => {});
    // A failed run keeps its logs and its data folder, to be looked into.
    const keep = options.keep || !ok;
    await server.stop({ removeData: !keep }).catch(() => {});
    if (keep) log(`logs and data kept in ${runDir}`);
    else rmSync(runDir, { recursive: true, force: true });
  }
}

/** Starts processes until each kind runs its number (each start retried a few times). */
async function topUp(processes: RotaProcesses): Promise<void> {
  const starts: Promise<unknown>[] = [];
  for (const [kind, count] of Object.entries(PROCESSES) as [ProcessKind, number][]) {
    for (let n = processes.live(kind).length; n < count; n++) {
      starts.push(retry(() => processes.start(kind), 5));
    }
  }
  await Promise.all(starts);
}

async function retry<T>(fn: () => Promise<T>, times: number): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= times) throw error;
      await sleep(1_000);
    }
  }
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const code: ChaosErrorCode = error instanceof ChaosError ? error.code : "CHAOS_FAILED";
    process.stderr.write(`chaos: ${(error as Error).message} [${code}]\n`);
    process.exitCode = error instanceof ChaosError && error.code === "CHAOS_BAD_OPTION" ? 2 : 3;
  },
);
