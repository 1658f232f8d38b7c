/**
 * What a chaos run sets up before its processes start: rota's schema, the
 * side tables the checks read (schema "chaos"), the schedules, the limits,
 * and a user table under change capture.
 */
import type pg from "pg";
import type { Rota } from "../../src/client.js";

/** The schema rota's tables live in, for the run's processes and its checks. */
export const ROTA_SCHEMA = "rota";

/** The queue limit and the per-key limits the run enqueues under (and checks). */
export const QUEUE_LIMIT = { queue: "limited", limit: 3 } as const;
export const KEY_LIMITS: Record<string, number> = { k1: 1, k2: 2 };

/** Rows of chaos.items, the captured user table. */
export const ITEM_COUNT = 30;

export type CatchUpPolicy = "all" | "latest";

/** A schedule of the run, and what its checks expect of it. */
export interface ChaosSchedule {
  name: string;
  /** Seconds between occurrences (every cron below is one step of seconds). */
  periodS: number;
  cron: string;
  catchUp: CatchUpPolicy;
  overlap: "allow" | "skip" | "queue";
  payload: Record<string, number>;
  /** Fan-out: its targets, and the window they are spread over. */
  targets?: string[];
  windowS?: number;
}

export const SCHEDULES: ChaosSchedule[] = [
  // Every occurrence must run, whatever happens.
  {
    name: "every-second-all",
    periodS: 1,
    cron: "* * * * * *",
    catchUp: "all",
    overlap: "allow",
    payload: { ms: 20 },
  },
  // Every occurrence runs, one at a time: a run held up by a dead worker's
  // lease holds the next ones back, which then run, late.
  {
    name: "every-2s-queued",
    periodS: 2,
    cron: "*/2 * * * * *",
    catchUp: "all",
    overlap: "queue",
    payload: { ms: 150 },
  },
  // Every third run takes 1.5 s: the occurrences during it are skipped;
  // after downtime only the latest runs.
  {
    name: "every-second-skip",
    periodS: 1,
    cron: "* * * * * *",
    catchUp: "latest",
    overlap: "skip",
    payload: { ms: 30, longEvery: 3, longMs: 1_500 },
  },
  // Twelve targets spread over 8 s of each 10-second cadence.
  {
    name: "fan-out",
    periodS: 10,
    cron: "*/10 * * * * *",
    catchUp: "all",
    overlap: "allow",
    payload: { ms: 40 },
    targets: Array.from({ length: 12 }, (_, n) => `target-${n + 1}`),
    windowS: 8,
  },
];

const SIDE_TABLES = `
create schema chaos;
-- Every handler run, written by the handler (chaos-tasks.mjs).
create table chaos.runs (
  run_id uuid primary key,
  job_id bigint not null,
  attempt int not null,
  task text not null,
  queue text not null,
  schedule_id bigint,
  occurrence_at timestamptz,
  target_key text,
  payload jsonb,
  pid int not null,
  started_at timestamptz not null,
  ended_at timestamptz,
  outcome text
);
create index on chaos.runs (job_id);
-- Every job the run enqueued and knows committed; how it was enqueued.
create table chaos.enqueued (
  job_id bigint primary key,
  kind text not null,
  via text not null,
  batch_id bigint,
  enqueued_at timestamptz not null default clock_timestamp()
);
-- Enqueues that failed without saying whether they committed (the
-- connection went in the middle): their payload's token finds them.
create table chaos.ambiguous (token text primary key, kind text not null);
-- Every batch the run enqueued (in the transaction that wrote it).
create table chaos.batches (batch_id bigint primary key, members int not null);
-- The captured user table, updated steadily.
create table chaos.items (id int primary key, version bigint not null default 0);
`;

/** Creates the side tables, migrates rota, and sets up schedules, limits and capture. */
export async function setUp(rota: Rota, client: pg.Client): Promise<void> {
  await client.query(SIDE_TABLES);
  await rota.migrate();
  await rota.queues.setLimit(QUEUE_LIMIT.queue, QUEUE_LIMIT.limit);
  for (const schedule of SCHEDULES) {
    await rota.schedules.upsert({
      name: schedule.name,
      task: "chaos.tick",
      queue: "sched",
      cron: schedule.cron,
      catchUp: schedule.catchUp,
      overlap: schedule.overlap,
      payload: schedule.payload,
      // Catch-up "all" without a window: no occurrence is ever past its
      // deadline, so every one must run.
      ...(schedule.windowS !== undefined ? { window: `${schedule.windowS}s` } : {}),
      maxAttempts: 25,
    });
    if (schedule.targets) await rota.schedules.targets.add(schedule.name, schedule.targets);
  }
  await rota.capture.add({
    name: "items",
    table: "chaos.items",
    columns: ["version"],
    on: ["insert", "update"],
    task: "chaos.capture",
    queue: "capture",
  });
  // Inserted after the capture: each row's first job is its insert.
  await client.query("insert into chaos.items (id) select generate_series(1, $1::int)", [
    ITEM_COUNT,
  ]);
}
