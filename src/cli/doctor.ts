import type { Command } from "commander";
import { redactUrl } from "../config.js";
import { isRotaError } from "../errors.js";
import { readLease } from "../orchestrator/leader.js";
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
      const report = await diagnose(command.optsWithGlobals<GlobalOptions>());
      if (options.json) printJson(report);
      else printReport(report);
      if (!report.ok) process.exitCode = 1;
    });
}

async function diagnose(globals: GlobalOptions): Promise<DoctorReport> {
  const { LATEST_SCHEMA_VERSION } = await import("../db/migrate.js");
  const url = databaseUrlFrom(globals);
  const report: DoctorReport = {
    ok: false,
    reachable: false,
    database_url: url === undefined ? null : redactUrl(url),
    postgres_version: null,
    schema: globals.schema ?? "rota",
    schema_version: null,
    latest_version: LATEST_SCHEMA_VERSION,
    pending_migrations: [],
    leader: null,
    problems: [],
  };
  let rota: ReturnType<typeof rotaFor> | undefined;
  try {
    rota = rotaFor(globals);
    report.schema = rota.schema;
    const client = await rota.db.connect();
    try {
      const version = await client.query<{ server_version: string }>("show server_version");
      report.reachable = true;
      report.postgres_version = version.rows[0]?.server_version ?? null;
    } finally {
      client.release();
    }
    const status = await rota.schemaStatus();
    report.schema_version = status.version;
    report.pending_migrations = status.pending.map(
      (m) => `${String(m.version).padStart(4, "0")}_${m.name}`,
    );
    if (status.version > status.latest) {
      report.problems.push({
        code: "SCHEMA_TOO_NEW",
        message: `schema is at version ${status.version}, newer than this rota (${status.latest}): upgrade rota`,
      });
    } else if (status.pending.length > 0) {
      report.problems.push({
        code: "SCHEMA_NOT_MIGRATED",
        message: `${status.pending.length} migration(s) pending: run \`rota migrate\``,
      });
    } else {
      const lease = await readLease(rota.db, "orchestrator");
      report.leader = lease && {
        holder: lease.holder,
        epoch: lease.epoch,
        expires_at: lease.expiresAt.toISOString(),
        valid: lease.valid,
      };
    }
  } catch (error) {
    report.problems.push(
      isRotaError(error)
        ? { code: error.code, message: error.message }
        : { code: "DATABASE_UNREACHABLE", message: (error as Error).message },
    );
  } finally {
    await rota?.close();
  }
  report.ok = report.problems.length === 0;
  return report;
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
