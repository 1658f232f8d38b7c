/**
 * pg-boss's schedules as rota schedules, for a switch from pg-boss
 * (`rota schedules import --from pg-boss`, docs/coming-from.md).
 *
 * pg-boss keeps a schedule per (name, key) in `<schema>.schedule`: `name` is
 * the queue each occurrence is sent to (rota's task), `cron` its expression
 * (or an RFC 5545 rule where `kind` is "rrule"), `timezone`, `data` (the
 * payload) and `options`, the send() options each job is created with plus
 * `tz`, `key` and `missed`. Each becomes a schedule named
 * `<prefix><name>[:<key>]` (pg-boss allows no ":" in either, so two never
 * meet), owned by "external" until handed over.
 *
 * Mapped: `priority` (higher runs first in both), `retryLimit` (or the
 * queue's, as pg-boss falls back to it) as maxAttempts = retries + 1, and
 * `missed`: "skip" (pg-boss's default: nothing is sent for occurrences that
 * came due while no pass ran) is catch-up "none", "once" (one job for the
 * latest) is catch-up "latest". Every other option is listed as unmapped,
 * with what rota has instead.
 */

import { escapeIdentifier } from "pg";
import type { Database } from "../db/database.js";
import { importQueries } from "../db/queries/imports.js";
import { RotaError } from "../errors.js";
import type { ImportEntry, ImportPlan, UnmappedOption } from "./schedule-import.js";

export const DEFAULT_PG_BOSS_SCHEMA = "pgboss";
export const DEFAULT_PG_BOSS_PREFIX = "pg-boss:";

/** A row of pg-boss's schedule table, as read (columns a release lacks are undefined). */
export interface PgBossSchedule {
  name: string;
  key?: string | null;
  kind?: string | null;
  cron: string;
  timezone?: string | null;
  data?: unknown;
  options?: Record<string, unknown> | null;
  /** The retry limit of the queue it sends to (pg-boss's default when the schedule names none). */
  queueRetryLimit?: number | null;
}

/** Reads every schedule of the pg-boss installed in `schema` of rota's database. */
export async function readPgBossSchedules(db: Database, schema: string): Promise<PgBossSchedule[]> {
  if (typeof schema !== "string" || schema === "" || schema.length > 63) {
    throw new RotaError(
      "INVALID_OPTION",
      `The pg-boss schema must be a schema name of 1-63 characters (pg-boss's "schema" option, default "pgboss"), got ${JSON.stringify(schema)}.`,
      { details: { field: "schema", value: schema } },
    );
  }
  const q = importQueries(db.schema);
  const source = escapeIdentifier(schema);
  const tables = (
    await db.run(q.PgBossTables, { schedule: `${source}.schedule`, queue: `${source}.queue` })
  ).rows[0];
  if (!tables?.schedule || !tables.queue) {
    throw new RotaError(
      "IMPORT_SOURCE_NOT_FOUND",
      `No pg-boss ${tables?.schedule ? "queue" : "schedule"} table in schema "${schema}" of this database: give the schema pg-boss was started with (--pg-boss-schema NAME; pg-boss's default is "pgboss"). pg-boss 10 or later is read.`,
      { details: { field: "schema", value: schema } },
    );
  }
  const rows = await db.runSpliced(q.PgBossSchedules, {}, { source });
  return rows.rows.map((row) => ({
    ...(row.schedule as unknown as PgBossSchedule),
    queueRetryLimit: row.queue_retry_limit,
  }));
}

/** Why each pg-boss send() option has no place on a rota schedule, and what rota has instead. */
const NOT_MAPPED: Record<string, string> = {
  retryDelay:
    "rota retries with the task's backoff (defineTask({ backoff }) or enqueue's backoff option), not a schedule option",
  retryBackoff:
    "rota retries with the task's backoff (exponential by default), not a schedule option",
  retryDelayMax: "the task's backoff has maxMs",
  expireInSeconds: "a time limit per attempt is the task's timeoutMs",
  heartbeatSeconds: "rota's workers keep a heartbeat lease on every job (the worker's leaseMs)",
  retentionSeconds:
    "a queued execution waits until it runs or its catch-up deadline passes (then it is recorded missed)",
  deleteAfterSeconds:
    "finished jobs are pruned by the worker's and orchestrator's retention option",
  singletonKey:
    "rota runs each occurrence once by itself; a schedule's overlap (skip or queue) keeps its runs apart",
  singletonSeconds: "rota runs each occurrence once by itself",
  singletonNextSlot: "rota runs each occurrence once by itself",
  startAfter: "rota runs each occurrence at its time",
  deadLetter:
    "rota has no dead-letter queue: a job out of attempts stays failed (rota jobs list --state failed, jobs retry, jobs replay)",
  group: "per-key concurrency is the task's concurrencyKey and concurrencyLimit",
  id: "rota gives each execution its own id",
};

/** Options read elsewhere (tz is the timezone column; db was a connection, never a job option). */
const READ_ELSEWHERE = new Set(["tz", "key", "db"]);

/** Maps pg-boss's schedules onto external rota schedules named `<prefix><name>[:<key>]`. */
export function pgBossImport(
  rows: readonly PgBossSchedule[],
  options: { prefix?: string } = {},
): ImportPlan {
  const prefix = options.prefix ?? DEFAULT_PG_BOSS_PREFIX;
  const entries: ImportEntry[] = [];
  const problems: string[] = [];
  for (const row of rows) {
    const key = row.key ?? "";
    const source = `pg-boss schedule "${row.name}"${key === "" ? "" : ` key "${key}"`}`;
    const given = row.options ?? {};
    if (row.kind === "rrule" || /^\s*(RRULE:|FREQ=|DTSTART)/i.test(row.cron)) {
      problems.push(
        `${source}: "${row.cron}" is a recurrence rule (RRULE); a rota schedule takes cron or an interval: rewrite it as cron in pg-boss and import again, or add it with rota schedules add --every`,
      );
      continue;
    }
    const missed = given.missed ?? "skip";
    if (missed !== "skip" && missed !== "once") {
      problems.push(
        `${source}: missed ${JSON.stringify(missed)} is not a policy pg-boss has ("skip" or "once")`,
      );
      continue;
    }
    const retryLimit = given.retryLimit ?? row.queueRetryLimit ?? null;
    if (retryLimit !== null && !(Number.isInteger(retryLimit) && (retryLimit as number) >= 0)) {
      problems.push(`${source}: retryLimit ${JSON.stringify(retryLimit)} is not a whole number`);
      continue;
    }
    const unmapped: UnmappedOption[] = [];
    for (const [option, value] of Object.entries(given)) {
      if (value === undefined || value === null) continue;
      if (["priority", "retryLimit", "missed"].includes(option) || READ_ELSEWHERE.has(option)) {
        continue;
      }
      unmapped.push({
        option,
        value,
        reason: NOT_MAPPED[option] ?? "not an option this import knows how to carry over",
      });
    }
    entries.push({
      source,
      input: {
        name: `${prefix}${row.name}${key === "" ? "" : `:${key}`}`,
        task: row.name,
        cron: row.cron,
        timezone: row.timezone ?? "UTC",
        owner: "external",
        ...(row.data === null || row.data === undefined ? {} : { payload: row.data }),
        ...(given.priority === undefined ? {} : { priority: given.priority as number }),
        ...(typeof retryLimit === "number" ? { maxAttempts: retryLimit + 1 } : {}),
        catchUp: missed === "once" ? "latest" : "none",
      },
      unmapped,
    });
  }
  return {
    entries,
    problems,
    invalid: (all) =>
      new RotaError(
        "INVALID_IMPORT",
        `${all.length} pg-boss schedule(s) cannot be imported; nothing was written:\n  ${all.join("\n  ")}`,
        { details: { problems: all } },
      ),
  };
}
