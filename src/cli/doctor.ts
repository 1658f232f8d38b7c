import type { Command } from "commander";
import type { Rota } from "../client.js";
import { DEFAULT_SCHEMA, redactUrl } from "../config.js";
import { migrationLabel } from "../db/migrate.js";
import { type Diagnosis, failedDiagnosis } from "../diagnose.js";
import { databaseUrlFrom, type GlobalOptions, rotaFor } from "./context.js";
import { printJson } from "./output.js";

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
}

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description(
      "check the database: reachable, PostgreSQL version, schema version, pending migrations",
    )
    .option("--json", "print one JSON object")
    .action(async (options: { json?: boolean }, command: Command) => {
      const report = await doctor(command.optsWithGlobals<GlobalOptions>());
      if (options.json) printJson(report);
      else printReport(report);
      if (!report.ok) process.exitCode = 1;
    });
}

/** The library's diagnosis, in the shape `rota doctor --json` prints, with the URL it used. */
async function doctor(globals: GlobalOptions): Promise<DoctorReport> {
  const url = databaseUrlFrom(globals);
  let rota: Rota | undefined;
  let diagnosis: Diagnosis;
  try {
    rota = rotaFor(globals);
    diagnosis = await rota.diagnose();
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
  };
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
  lines.push(report.ok ? "healthy" : "not healthy");
  process.stdout.write(`${lines.join("\n")}\n`);
}
