import { validateCount, validateMillis } from "./config.js";
import type { Database } from "./db/database.js";
import { type TableHealthRow, vacuumQueries } from "./db/queries/vacuum.js";
import { RotaError } from "./errors.js";

/**
 * Vacuum's side of rota's health, for diagnose() (`rota doctor`): every
 * claim and outcome leaves a dead row version in the jobs table, so a queue
 * stays fast only while vacuum removes them. What is found here is a
 * warning, not a problem: rota works meanwhile, slower and bigger, and the
 * cause is often outside rota (a server setting, another application's
 * forgotten transaction).
 */
export const warningCodes = {
  AUTOVACUUM_OFF:
    "autovacuum does not run on the server, or on one of rota's tables: their dead rows stay until a manual VACUUM",
  TABLE_BLOAT: "one of rota's tables holds many dead rows, a large share of it",
  VACUUM_BEHIND:
    "one of rota's tables is past the dead rows at which autovacuum takes it up, and has not been vacuumed for long",
  LONG_TRANSACTION:
    "a transaction has been open for long; while it holds a snapshot, vacuum removes no row that died after it began",
  XMIN_HELD:
    "an inactive replication slot or an old prepared transaction holds back vacuum in the whole database",
} as const;

export type WarningCode = keyof typeof warningCodes;

/** Something worth a look that does not stop rota from working (see warningCodes). */
export interface DiagnosisWarning {
  code: WarningCode;
  /** What was found and what to do, for people. */
  message: string;
  /** The table it is about, schema-qualified (bloat, autovacuum). */
  table?: string;
  /** The backend it is about (a long transaction). */
  pid?: number;
  /** How long the transaction has been open, or since the table's last vacuum (ms). */
  ageMs?: number;
  deadTuples?: number;
  liveTuples?: number;
}

/** When diagnose() warns; every field optional, with the defaults below. */
export interface VacuumThresholds {
  /** Warn about transactions (idle in transaction included) open at least this long; default 5 minutes. */
  transactionAgeMs?: number;
  /** Warn about a table with at least this many dead rows… default 100,000 … */
  deadTuples?: number;
  /** …when they are also at least this share of its rows, live and dead; default 0.2. */
  deadFraction?: number;
  /**
   * Warn about a table past autovacuum's trigger (its dead rows above
   * autovacuum_vacuum_threshold + scale_factor × rows) that has not been
   * vacuumed for this long, or ever; default 1 hour.
   */
  vacuumAgeMs?: number;
}

/**
 * Five minutes: a transaction that holds a snapshot that long keeps every
 * row version that died meanwhile; at 1,000 jobs/s that is about a million
 * more in the jobs table (bench/soak/). A backup with pg_dump holds one for
 * its whole run: expect this warning then.
 */
export const DEFAULT_VACUUM_THRESHOLDS: Required<VacuumThresholds> = {
  transactionAgeMs: 5 * 60_000,
  deadTuples: 100_000,
  deadFraction: 0.2,
  vacuumAgeMs: 3_600_000,
};

export function resolveVacuumThresholds(
  options: VacuumThresholds = {},
): Required<VacuumThresholds> {
  const d = DEFAULT_VACUUM_THRESHOLDS;
  const fraction = options.deadFraction ?? d.deadFraction;
  if (typeof fraction !== "number" || !(fraction >= 0 && fraction <= 1)) {
    throw new RotaError(
      "INVALID_OPTION",
      `Option deadFraction must be a number from 0 to 1 (a share of the table's rows), got ${JSON.stringify(fraction)}.`,
      { details: { field: "deadFraction", value: fraction } },
    );
  }
  return {
    transactionAgeMs: validateMillis(
      "transactionAgeMs",
      options.transactionAgeMs ?? d.transactionAgeMs,
    ),
    deadTuples: validateCount("deadTuples", options.deadTuples ?? d.deadTuples, 0),
    deadFraction: fraction,
    vacuumAgeMs: validateMillis("vacuumAgeMs", options.vacuumAgeMs ?? d.vacuumAgeMs),
  };
}

/** The warnings about vacuum on `db`'s schema and its database (thresholds already resolved). */
export async function vacuumWarnings(
  db: Database,
  thresholds: Required<VacuumThresholds>,
): Promise<DiagnosisWarning[]> {
  const q = vacuumQueries(db.schema);
  const warnings: DiagnosisWarning[] = [];
  const server = (await db.run(q.Autovacuum, {})).rows[0];
  const serverRuns = server?.autovacuum === true && server.track_counts;
  if (server && !serverRuns) {
    const what = server.autovacuum ? "track_counts is off" : "autovacuum is off";
    const where = server.source_file ? ` (set in ${server.source_file})` : "";
    warnings.push({
      code: "AUTOVACUUM_OFF",
      message: `${what} on this server${where}: the dead rows every claimed and finished job leaves in rota's tables stay until someone runs VACUUM; turn it on`,
    });
  }
  const tables = (await db.run(q.TableHealth, { schema: db.schema })).rows;
  for (const table of tables)
    warnings.push(...tableWarnings(db.schema, table, thresholds, serverRuns));

  const olderThanMs = thresholds.transactionAgeMs;
  for (const tx of (await db.run(q.OldTransactions, { olderThanMs })).rows) {
    const who = [
      tx.user_name && `user ${tx.user_name}`,
      tx.application_name && `application "${tx.application_name}"`,
      tx.state,
    ].filter(Boolean);
    const effect = tx.holds_xmin
      ? "vacuum removes no row that died since it began, in any table of this database"
      : "it holds no snapshot now, so vacuum is not held back, but it keeps its locks";
    warnings.push({
      code: "LONG_TRANSACTION",
      message: `transaction of pid ${tx.pid}${who.length > 0 ? ` (${who.join(", ")})` : ""} open for ${formatAge(tx.age_ms)}: ${effect}; end it, or SELECT pg_terminate_backend(${tx.pid})`,
      pid: tx.pid,
      ageMs: Math.round(tx.age_ms),
    });
  }
  for (const holder of (await db.run(q.XminHolders, { olderThanMs })).rows) {
    const age = `${holder.xid_age.toLocaleString("en")} transactions`;
    warnings.push({
      code: "XMIN_HELD",
      message:
        holder.kind === "replication slot"
          ? `replication slot "${holder.name}" has no standby attached and holds back vacuum (its xmin is ${age} old): drop it if its standby is gone, SELECT pg_drop_replication_slot('${holder.name}')`
          : `prepared transaction "${holder.name}" has waited ${formatAge(holder.age_ms ?? 0)} (${age}) and holds back vacuum: COMMIT PREPARED or ROLLBACK PREPARED it`,
      ...(holder.age_ms === null ? {} : { ageMs: Math.round(holder.age_ms) }),
    });
  }
  return warnings;
}

/**
 * Bloat, autovacuum disabled, and vacuum behind, for one table (`serverRuns`:
 * autovacuum runs on the server; when it does not, vacuumWarnings says so once).
 */
export function tableWarnings(
  schema: string,
  t: TableHealthRow,
  thresholds: Required<VacuumThresholds>,
  serverRuns: boolean,
): DiagnosisWarning[] {
  const name = `${schema}.${t.table_name}`;
  const counts = { table: name, deadTuples: t.dead_tuples, liveTuples: t.live_tuples };
  const warnings: DiagnosisWarning[] = [];
  if (!t.autovacuum_enabled) {
    warnings.push({
      code: "AUTOVACUUM_OFF",
      message: `autovacuum is disabled on table ${name} (its storage parameter autovacuum_enabled): ALTER TABLE ${name} RESET (autovacuum_enabled)`,
      ...counts,
    });
  }
  const share = t.dead_tuples / Math.max(1, t.live_tuples + t.dead_tuples);
  if (t.dead_tuples >= thresholds.deadTuples && share >= thresholds.deadFraction) {
    warnings.push({
      code: "TABLE_BLOAT",
      message: `table ${name} holds ${count(t.dead_tuples)} dead rows (${Math.round(share * 100)}% of its rows): VACUUM ${name}, and see what keeps autovacuum from it (other warnings here)`,
      ...counts,
    });
  }
  const since = t.since_vacuum_ms;
  if (
    serverRuns &&
    t.autovacuum_enabled &&
    t.dead_tuples > t.vacuum_trigger &&
    (since === null || since >= thresholds.vacuumAgeMs)
  ) {
    warnings.push({
      code: "VACUUM_BEHIND",
      message: `table ${name} has ${count(t.dead_tuples)} dead rows, past the ${count(Math.ceil(t.vacuum_trigger))} at which autovacuum takes it up, and ${since === null ? "has never been vacuumed" : `was last vacuumed ${formatAge(since)} ago`}: autovacuum may be busy with other tables (autovacuum_max_workers) or blocked by a lock`,
      ...counts,
      ...(since === null ? {} : { ageMs: Math.round(since) }),
    });
  }
  return warnings;
}

function count(n: number): string {
  return Math.round(n).toLocaleString("en");
}

/** 45 s, 12 min 5 s, 3 h 20 min: an age as people read it. */
export function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
