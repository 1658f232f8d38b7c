import type { Command } from "commander";
import type { Rota } from "../client.js";
import { DEFAULT_SCHEMA, redactUrl } from "../config.js";
import { migrationLabel } from "../db/migrate.js";
import { type Diagnosis, failedDiagnosis } from "../diagnose.js";
import { RotaError } from "../errors.js";
import type { VacuumThresholds } from "../vacuum-health.js";
import { databaseUrlFrom, type GlobalOptions, rotaFor } from "./context.js";
import { integerOption, printJson, snake } from "./output.js";

export interface DoctorReport {
  ok: boolean;
  reachable: boolean;
  database_url: string | null;
  postgres_version: string | null;
  schema: string;
  schema_version: number | null;
  latest_version: number;
  pending_migrations: string[];
  /** The orchestrator lease: who leads, until when (null: no orchestrator has run). */
  leader: { holder: string; epoch: number; expires_at: string; valid: boolean } | null;
  problems: { code: string; message: string }[];
  /**
   * What deserves a look but does not fail the check (exit 0): bloat,
   * autovacuum off, old transactions; DiagnosisWarning in snake_case.
   */
  warnings: Record<string, unknown>[];
}

interface DoctorCliOptions {
  json?: boolean;
  transactionAgeMs?: string;
  deadTuples?: string;
  deadFraction?: string;
  vacuumAgeMs?: string;
}

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description(
      "check the database: reachable, PostgreSQL version, schema version, pending migrations; warn about dead rows and what holds vacuum back",
    )
    .option("--json", "print one JSON object")
    .option(
      "--transaction-age-ms <ms>",
      "warn about transactions open at least this long (default 300000)",
    )
    .option(
      "--dead-tuples <n>",
      "warn about a table with at least this many dead rows… (default 100000)",
    )
    .option("--dead-fraction <f>", "…that are at least this share of its rows (default 0.2)")
    .option(
      "--vacuum-age-ms <ms>",
      "warn about a table past autovacuum's trigger not vacuumed for this long (default 3600000)",
    )
    .action(async (options: DoctorCliOptions, command: Command) => {
      const report = await doctor(command.optsWithGlobals<GlobalOptions>(), thresholdsOf(options));
      if (options.json) printJson(report);
      else printReport(report);
      if (!report.ok) process.exitCode = 1;
    });
}

/** The library's diagnosis, in the shape `rota doctor --json` prints, with the URL it used. */
async function doctor(globals: GlobalOptions, thresholds: VacuumThresholds): Promise<DoctorReport> {
  const url = databaseUrlFrom(globals);
  let rota: Rota | undefined;
  let diagnosis: Diagnosis;
  try {
    rota = rotaFor(globals);
    diagnosis = await rota.diagnose(thresholds);
  } catch (error) {
    // No Rota to ask: no URL, or a bad URL or schema name.
    diagnosis = failedDiagnosis(globals.schema ?? DEFAULT_SCHEMA, error);
  } finally {
    await rota?.close();
  }
  return {
    ok: diagnosis.ok,
    reachable: diagnosis.reachable,
    database_url: url === undefined ? null : redactUrl(url),
    postgres_version: diagnosis.serverVersion,
    schema: diagnosis.schema,
    schema_version: diagnosis.schemaVersion,
    latest_version: diagnosis.latestVersion,
    pending_migrations: diagnosis.pendingMigrations.map(migrationLabel),
    leader: diagnosis.leader && {
      holder: diagnosis.leader.holder,
      epoch: diagnosis.leader.epoch,
      expires_at: diagnosis.leader.expiresAt.toISOString(),
      valid: diagnosis.leader.valid,
    },
    problems: diagnosis.problems,
    warnings: diagnosis.warnings.map((warning) => snake(warning) as Record<string, unknown>),
  };
}

/** The thresholds given on the command line (diagnose() checks their ranges). */
function thresholdsOf(options: DoctorCliOptions): VacuumThresholds {
  const thresholds: VacuumThresholds = {};
  if (options.transactionAgeMs !== undefined) {
    thresholds.transactionAgeMs = integerOption("--transaction-age-ms", options.transactionAgeMs);
  }
  if (options.deadTuples !== undefined) {
    thresholds.deadTuples = integerOption("--dead-tuples", options.deadTuples);
  }
  if (options.deadFraction !== undefined) {
    const fraction = Number(options.deadFraction);
    if (options.deadFraction.trim() === "" || Number.isNaN(fraction)) {
      throw new RotaError(
        "INVALID_OPTION",
        `--dead-fraction must be a number from 0 to 1, got "${options.deadFraction}".`,
        { details: { flag: "--dead-fraction" } },
      );
    }
    thresholds.deadFraction = fraction;
  }
  if (options.vacuumAgeMs !== undefined) {
    thresholds.vacuumAgeMs = integerOption("--vacuum-age-ms", options.vacuumAgeMs);
  }
  return thresholds;
}

function printReport(report: DoctorReport): void {
  const mark = (good: boolean) => (good ? "ok  " : "FAIL");
  const lines = [
    `${mark(report.reachable)} database    ${report.database_url ?? "(no URL given)"}`,
    `${mark(report.postgres_version !== null)} postgres    ${report.postgres_version ?? "unknown"}`,
    `${mark(report.schema_version === report.latest_version)} schema      "${report.schema}" at version ${report.schema_version ?? "?"} (this rota: ${report.latest_version})`,
  ];
  if (report.pending_migrations.length > 0) {
    lines.push(`     pending     ${report.pending_migrations.join(", ")}`);
  }
  if (report.reachable && report.schema_version === report.latest_version) {
    const leader = report.leader;
    lines.push(
      leader === null
        ? "     leader      no orchestrator has run (schedules are materialized by `rota orchestrator` or `rota worker --orchestrate`)"
        : `     leader      ${leader.holder}, epoch ${leader.epoch}, ${leader.valid ? "until" : "expired at"} ${leader.expires_at}`,
    );
  }
  for (const problem of report.problems) lines.push(`  ! ${problem.message} [${problem.code}]`);
  for (const warning of report.warnings) lines.push(`warn ${warning.message} [${warning.code}]`);
  const warned = report.warnings.length > 0 ? ` (${report.warnings.length} warning(s))` : "";
  lines.push(`${report.ok ? "healthy" : "not healthy"}${warned}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}
