import type { Database } from "./db/database.js";
import { LATEST_SCHEMA_VERSION, schemaStatus } from "./db/migrate.js";
import { serverQueries } from "./db/queries/server.js";
import { isRotaError, type RotaErrorCode } from "./errors.js";
import { type LeaseState, readLease } from "./orchestrator/leader.js";
import {
  type DiagnosisWarning,
  resolveVacuumThresholds,
  type VacuumThresholds,
  vacuumWarnings,
} from "./vacuum-health.js";

// The warnings are part of the diagnosis: exported with it.
export {
  type DiagnosisWarning,
  type VacuumThresholds,
  type WarningCode,
  warningCodes,
} from "./vacuum-health.js";

/**
 * A health report on one rota schema (Rota.diagnose(), printed by `rota
 * doctor`): can rota reach PostgreSQL, is the schema at the version this rota
 * needs, which orchestrator leads, and what keeps vacuum from rota's tables.
 * diagnose() reports what is wrong in `problems` and what deserves a look in
 * `warnings` instead of throwing.
 */
export interface Diagnosis {
  /** No problems. */
  ok: boolean;
  /** A connection was made and answered. */
  reachable: boolean;
  /** PostgreSQL's server_version ("15.4 (Debian …)"); null when unreachable. */
  serverVersion: string | null;
  schema: string;
  /** The schema's migration version (0: none applied); null when it could not be read. */
  schemaVersion: number | null;
  /** The version this rota needs (LATEST_SCHEMA_VERSION). */
  latestVersion: number;
  /** Migrations this rota has and the schema lacks, oldest first. */
  pendingMigrations: { version: number; name: string }[];
  /**
   * The orchestrator lease: holder, epoch, until when, and whether it is
   * still valid by the database clock. Null when no orchestrator has run, or
   * when the schema is not at this rota's version (then it is not read).
   */
  leader: LeaseState | null;
  /** What is wrong, each with the code a RotaError would carry and what to do. */
  problems: DiagnosisProblem[];
  /**
   * What deserves a look without being wrong (`ok` ignores them): dead rows
   * piling up in rota's tables, autovacuum off, transactions old enough to
   * hold vacuum back (see warningCodes in vacuum-health.ts).
   */
  warnings: DiagnosisWarning[];
}

export interface DiagnosisProblem {
  code: RotaErrorCode;
  message: string;
}

/** The lease to report, and when to warn about vacuum (VacuumThresholds: its defaults there). */
export interface DiagnoseOptions extends VacuumThresholds {
  /** The lease whose leader is reported; default "orchestrator" (OrchestratorOptions.leaseName). */
  leaseName?: string;
}

export async function diagnose(db: Database, options: DiagnoseOptions = {}): Promise<Diagnosis> {
  const report = notReached(db.schema);
  try {
    // Bad thresholds are the caller's mistake: refused before anything is asked.
    const thresholds = resolveVacuumThresholds(options);
    // connect() turns a failed connection into DATABASE_UNREACHABLE.
    const client = await db.connect();
    try {
      const version = await db.run(serverQueries(db.schema).Version, {}, client);
      report.reachable = true;
      report.serverVersion = version.rows[0]?.server_version ?? null;
    } finally {
      client.release();
    }
    const status = await schemaStatus(db);
    report.schemaVersion = status.version;
    report.pendingMigrations = status.pending;
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
      report.leader = await readLease(db, options.leaseName ?? "orchestrator");
    }
    // Asked whatever the schema's version: the tables there are read as they are.
    report.warnings = await vacuumWarnings(db, thresholds);
  } catch (error) {
    report.problems.push(problemOf(error));
  }
  report.ok = report.problems.length === 0;
  return report;
}

/**
 * The report when no Rota could be made to ask (no or a bad database URL,
 * a bad schema name): not reachable, the error as its one problem.
 */
export function failedDiagnosis(schema: string, error: unknown): Diagnosis {
  const report = notReached(schema);
  report.problems.push(problemOf(error));
  return report;
}

/** Nothing known yet: diagnose() fills it in as each question is answered. */
function notReached(schema: string): Diagnosis {
  return {
    ok: false,
    reachable: false,
    serverVersion: null,
    schema,
    schemaVersion: null,
    latestVersion: LATEST_SCHEMA_VERSION,
    pendingMigrations: [],
    leader: null,
    problems: [],
    warnings: [],
  };
}

/** A RotaError keeps its code; anything else (the server failed a statement) is reported as the database's. */
function problemOf(error: unknown): DiagnosisProblem {
  return isRotaError(error)
    ? { code: error.code, message: error.message }
    : { code: "DATABASE_UNREACHABLE", message: (error as Error).message };
}
