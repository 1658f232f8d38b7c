-- Fan-out (docs/scheduling.md, "Targets, windows and strategies"): one
-- schedule runs for each of many targets (projects, tenants), each at its
-- own offset inside a time window after the occurrence, placed by a
-- distribution strategy. Each occurrence, per target, becomes one execution
-- whose run_at is occurrence + offset: the execution row carries the offset
-- that placed it, so the plan is durable and visible.

-- A schedule with fan_out runs for its targets (the rows of
-- schedule_targets, and what target_source returns) instead of its own grid
-- (target_key ''). window_ms: the window the offsets fall in (capped per
-- occurrence at the gap to the next one); null places every target at the
-- occurrence. distribution: 'random', 'spread', 'batches' (with batch_size
-- and batch_every_ms) or the name of a strategy registered in code. seed:
-- what 'random' draws from (null: the schedule's name).
alter table {{schema}}.schedules
  add column fan_out boolean not null default false,
  add column window_ms bigint constraint schedules_window_ms_valid check (window_ms > 0),
  add column distribution text not null default 'random'
    constraint schedules_distribution_valid check (distribution ~ '^[A-Za-z][A-Za-z0-9_.:-]{0,63}$'),
  add column batch_size integer constraint schedules_batch_size_valid check (batch_size >= 1),
  add column batch_every_ms bigint constraint schedules_batch_every_valid check (batch_every_ms >= 1),
  add column seed bigint,
  add column target_source text,
  add constraint schedules_batches_complete
    check ((distribution = 'batches') = (batch_size is not null and batch_every_ms is not null));

-- The version covers the fan-out settings too: a change of window or
-- strategy supersedes the executions that have not started and re-plans
-- them. For a schedule without any of them the hash is the one it had, so
-- this migration makes no existing schedule drift.
drop index {{schema}}.schedules_drifted;
alter table {{schema}}.schedules drop column version;
alter table {{schema}}.schedules add column version text generated always as (md5(
    task || E'\x1f' || payload::text || E'\x1f' || queue || E'\x1f' || priority::text
    || E'\x1f' || coalesce(max_attempts::text, '') || E'\x1f' || coalesce(cron, '')
    || E'\x1f' || coalesce(every, '') || E'\x1f' || coalesce(extract(epoch from (anchor - 'epoch'::timestamptz))::text, '')
    || E'\x1f' || timezone || E'\x1f' || catch_up || E'\x1f' || coalesce(catch_up_window_ms::text, '')
    || E'\x1f' || overlap
    || case when fan_out or window_ms is not null or distribution <> 'random' or seed is not null
                 or target_source is not null
            then E'\x1f' || fan_out::text || E'\x1f' || coalesce(window_ms::text, '')
                 || E'\x1f' || distribution || E'\x1f' || coalesce(batch_size::text, '')
                 || E'\x1f' || coalesce(batch_every_ms::text, '') || E'\x1f' || coalesce(seed::text, '')
                 || E'\x1f' || coalesce(target_source, '')
            else '' end)) stored;
create index schedules_drifted on {{schema}}.schedules (id)
  where materialized_version is distinct from version and enabled and not paused and owner = 'rota';

-- A schedule's targets. target_key sorts by byte (collation "C"), the order
-- the 'batches' strategy and `targets list` use, the same in SQL and in
-- rota's planning code. payload is merged over the schedule's (objects:
-- key by key; otherwise it replaces it). from_source: added by the target
-- source, which removes it again when its query no longer returns it;
-- source_seen: the transaction that last read the source and found it
-- (those not found by the latest read are the ones that left). Deleting the
-- schedule deletes its targets.
create table {{schema}}.schedule_targets (
  schedule_id bigint not null references {{schema}}.schedules (id) on delete cascade,
  target_key text collate "C" not null
    constraint schedule_targets_key_valid check (octet_length(target_key) between 1 and 200),
  payload jsonb,
  enabled boolean not null default true,
  from_source boolean not null default false,
  source_seen bigint,
  created_at timestamptz not null default {{schema}}.clock_now(),
  updated_at timestamptz not null default {{schema}}.clock_now(),
  primary key (schedule_id, target_key)
);

-- What placed an execution of a fanned-out schedule: its offset after the
-- occurrence (run_at = occurrence_at + planned_offset_ms) and the strategy.
alter table {{schema}}.jobs
  add column planned_offset_ms bigint,
  add column distribution text;
