-- Schedules, their planned executions, and the orchestrator's leader lease
-- (see docs/scheduling.md).
--
-- A schedule's occurrences become job rows ahead of time ("executions", state
-- 'scheduled'); workers claim them at their run_at whether or not an
-- orchestrator is alive. The orchestrator only keeps the horizon filled.

create table {{schema}}.schedules (
  id bigint generated always as identity primary key,
  name text not null constraint schedules_name_key unique
    constraint schedules_name_length check (octet_length(name) between 1 and 200),
  task text not null constraint schedules_task_length check (octet_length(task) between 1 and 128),
  payload jsonb not null default '{}'::jsonb,
  queue text not null default 'default'
    constraint schedules_queue_length check (octet_length(queue) between 1 and 128),
  priority integer not null default 0,
  max_attempts integer constraint schedules_max_attempts_valid check (max_attempts >= 1),
  -- The spec: a cron expression (5 or 6 fields), or `every` (a duration such
  -- as '90m' or 'P3D') counted from `anchor`. Validated by rota on the way in;
  -- a spec written here by hand that does not parse disables the schedule
  -- once, with the reason in last_error.
  cron text,
  every text,
  anchor timestamptz,
  timezone text not null default 'UTC',
  constraint schedules_one_spec check ((cron is null) <> (every is null)),
  -- After downtime: run 'all' missed occurrences, only the 'latest', or 'none';
  -- an execution not started within the window becomes 'missed'.
  catch_up text not null default 'latest'
    constraint schedules_catch_up_valid check (catch_up in ('all', 'latest', 'none')),
  catch_up_window_ms bigint constraint schedules_window_valid check (catch_up_window_ms > 0),
  -- While the previous execution still runs: 'allow', 'skip' or 'queue'.
  overlap text not null default 'allow'
    constraint schedules_overlap_valid check (overlap in ('allow', 'skip', 'queue')),
  -- Future executions kept materialized.
  horizon integer not null default 3
    constraint schedules_horizon_valid check (horizon between 1 and 1000),
  -- enabled = false: turned off by an operator, or quiesced for a bad spec
  -- (last_error says which). paused: an operator's pause; resume re-baselines.
  enabled boolean not null default true,
  paused boolean not null default false,
  -- 'external': another scheduler fires it; rota ignores it until handed over.
  owner text not null default 'rota'
    constraint schedules_owner_valid check (owner in ('rota', 'external')),
  -- Came from another scheduler (created external): `handover --percent`
  -- moves it between owners, in both directions.
  handover boolean not null default false,
  -- The cursor: the first occurrence not materialized yet. NULL means "no
  -- baseline": the next pass starts at the first occurrence after now and
  -- fires nothing that is already due (hand-over without a burst).
  next_run_at timestamptz,
  -- When the orchestrator must visit this schedule next: the run time of its
  -- earliest future execution (a slot frees when that one comes due), or
  -- -infinity when it needs attention now. Only rows with fill_at <= now are
  -- read by a pass, so a pass costs what the due schedules cost.
  fill_at timestamptz not null default '-infinity',
  -- The last occurrence materialized.
  last_run_at timestamptz,
  -- A hash of everything that shapes an execution. Executions record the
  -- version that made them; a change (through rota or by hand in SQL) makes
  -- the live ones stale, and reconcile supersedes and replaces them.
  version text generated always as (md5(
    task || E'\x1f' || payload::text || E'\x1f' || queue || E'\x1f' || priority::text
    || E'\x1f' || coalesce(max_attempts::text, '') || E'\x1f' || coalesce(cron, '')
    || E'\x1f' || coalesce(every, '') || E'\x1f' || coalesce(extract(epoch from (anchor - 'epoch'::timestamptz))::text, '')
    || E'\x1f' || timezone || E'\x1f' || catch_up || E'\x1f' || coalesce(catch_up_window_ms::text, '')
    || E'\x1f' || overlap)) stored,
  -- The version whose executions are live (set when they are materialized).
  materialized_version text,
  last_error text,
  quiesced_at timestamptz,
  created_at timestamptz not null default {{schema}}.clock_now(),
  updated_at timestamptz not null default {{schema}}.clock_now()
);

-- The materialization pass: rota-owned, running schedules by when they need a visit.
create index schedules_fill on {{schema}}.schedules (fill_at)
  where enabled and not paused and owner = 'rota';

-- Reconcile: schedules whose configuration changed since their executions
-- were made (also by a hand-written UPDATE).
create index schedules_drifted on {{schema}}.schedules (id)
  where materialized_version is distinct from version and enabled and not paused and owner = 'rota';

-- Executions. target_key is '' for a schedule's own grid (targets, later,
-- fan one schedule out to many keys); jobs_execution_once (below) makes an
-- occurrence one job. (No foreign key from jobs.schedule_id: executions are only ever inserted
-- for a schedule row the same statement just updated, and deleting a schedule
-- removes its unstarted executions itself; a check per inserted execution
-- would cost the materialization pass about a quarter of its time. Running
-- and finished executions of a deleted schedule keep its id for the record.)
alter table {{schema}}.jobs
  -- Overlap policy of a schedule execution, with concurrency_key naming the
  -- schedule and target: 'queue' waits while one with the same key runs,
  -- 'skip' becomes 'skipped' when it comes due while one runs.
  add column overlap text,
  -- NOT VALID here, validated after the transaction (below): validating
  -- reads the whole table, under this statement's ACCESS EXCLUSIVE lock
  -- here and under one that blocks no writer there. New rows are checked
  -- at once either way.
  add constraint jobs_overlap_valid check (overlap in ('skip', 'queue')) not valid,
  add constraint jobs_overlap_key check (overlap is null or concurrency_key is not null) not valid;

-- Leader leases-- Leader leases: one row per role. Leadership is this row, not a session
-- advisory lock, so it works behind PgBouncer in transaction mode. `epoch`
-- grows with every change of holder; work done as leader is fenced on it.
create table {{schema}}.leases (
  name text primary key,
  holder text not null,
  epoch bigint not null,
  acquired_at timestamptz not null,
  expires_at timestamptz not null
);

-- rota:concurrently
-- The jobs table's new indexes and checks, built without holding its
-- writers (see migrate.ts): each statement is safe to run again.
alter table {{schema}}.jobs validate constraint jobs_overlap_valid;
alter table {{schema}}.jobs validate constraint jobs_overlap_key;

-- An occurrence of a schedule for a target becomes at most one job that can
-- run: a superseded execution never runs, so its replacement may take the
-- same occurrence.
drop index concurrently if exists {{schema}}.jobs_execution_once;
create unique index concurrently jobs_execution_once on {{schema}}.jobs (schedule_id, target_key, occurrence_at)
  where occurrence_at is not null and state <> 'superseded';

-- The pruner reads finished jobs and finished executions separately (each
-- with its own retention), so each has its own index and one never scans
-- the other's rows. jobs_finished is rebuilt under a second name, then
-- takes the first.
drop index concurrently if exists {{schema}}.jobs_finished_next;
create index concurrently jobs_finished_next on {{schema}}.jobs (finished_at)
  where state in ('succeeded', 'failed', 'cancelled', 'skipped', 'superseded', 'missed')
    and schedule_id is null;
drop index concurrently if exists {{schema}}.jobs_finished;
alter index if exists {{schema}}.jobs_finished_next rename to jobs_finished;
drop index concurrently if exists {{schema}}.jobs_finished_executions;
create index concurrently jobs_finished_executions on {{schema}}.jobs (finished_at)
  where state in ('succeeded', 'failed', 'cancelled', 'skipped', 'superseded', 'missed')
    and schedule_id is not null;

-- A schedule's executions by time (upcoming, history, supersede, delete).
drop index concurrently if exists {{schema}}.jobs_schedule;
create index concurrently jobs_schedule on {{schema}}.jobs (schedule_id, run_at)
  where schedule_id is not null;

-- At most one running job per concurrency key (overlap 'queue' and 'skip').
-- Claims check first; two claims racing for the same key make one of them
-- fail on this index and claim again.
drop index concurrently if exists {{schema}}.jobs_running_concurrency;
create unique index concurrently jobs_running_concurrency on {{schema}}.jobs (concurrency_key)
  where state = 'running' and concurrency_key is not null;
