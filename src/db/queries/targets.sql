-- Every statement on {{schema}}.schedule_targets, and the executions a
-- fanned-out schedule writes for them (see docs/scheduling.md, "Targets,
-- windows and strategies").

-- name: Add
-- Adds or changes targets of schedule :scheduleId: :keys (unique within the
-- call) with :payloads (JSON text) and :enabled, each null where not given,
-- which leaves what is stored alone (a plain key given again changes
-- nothing). A key given here is the caller's from now on, not the source's.
-- One that becomes disabled loses its planned executions. Returns the
-- counts and the keys that were new.
with given as (
  select g.key collate "C" as key, g.payload::jsonb as payload, g.enabled
  from unnest(:keys::text[], :payloads::text[], :enabled::boolean[]) as g(key, payload, enabled)
),
changed as (
  update {{schema}}.schedule_targets as t
  set payload = coalesce(g.payload, t.payload), enabled = coalesce(g.enabled, t.enabled),
      from_source = false, updated_at = {{schema}}.clock_now()
  from given as g
  where t.schedule_id = :scheduleId and t.target_key = g.key
    and (t.payload is distinct from coalesce(g.payload, t.payload)
         or t.enabled is distinct from coalesce(g.enabled, t.enabled) or t.from_source)
  returning t.target_key, t.enabled,
            -- (the row as it was: a changed payload or flag counts, taking
            -- it from the source alone does not)
            (select o.payload is distinct from coalesce(g.payload, o.payload)
                    or o.enabled is distinct from coalesce(g.enabled, o.enabled)
             from {{schema}}.schedule_targets as o
             where o.schedule_id = t.schedule_id and o.target_key = t.target_key) as counted
),
added as (
  insert into {{schema}}.schedule_targets (schedule_id, target_key, payload, enabled)
  select :scheduleId, g.key, g.payload, coalesce(g.enabled, true) from given as g
  on conflict (schedule_id, target_key) do nothing
  returning target_key
),
dropped as (
  delete from {{schema}}.jobs as j
  using changed as c
  where not c.enabled and j.schedule_id = :scheduleId
    and j.target_key = (c.target_key collate "default") and j.state in ('scheduled', 'available')
  returning j.id
)
select (select count(*)::int from added) as added,
       (select count(*)::int from changed where counted) as updated,
       (select count(*)::int from dropped) as removed_executions,
       array(select target_key from added) as added_keys;

-- name: Remove
-- Removes targets :keys of schedule :scheduleId and their executions that
-- have not started (running ones finish).
with gone as (
  delete from {{schema}}.schedule_targets
  where schedule_id = :scheduleId and target_key = any(:keys::text[] collate "C")
  returning target_key
),
dropped as (
  delete from {{schema}}.jobs
  where schedule_id = :scheduleId and target_key = any(:keys::text[])
    and state in ('scheduled', 'available')
  returning id
)
select (select count(*)::int from gone) as removed,
       (select count(*)::int from dropped) as removed_executions;

-- name: List
-- Targets of schedule :scheduleId after key :after (byte order), each with
-- its next planned execution (through jobs_execution_once: schedule,
-- target, occurrence).
select t.target_key, t.payload, t.enabled, t.from_source, t.created_at,
       next.run_at as next_run_at, next.planned_offset_ms::float8 as offset_ms,
       next.occurrence_at as next_occurrence_at
from {{schema}}.schedule_targets as t
left join lateral (
  select j.run_at, j.planned_offset_ms, j.occurrence_at
  from {{schema}}.jobs as j
  -- (In the jobs column's collation, so its index serves the lookup.)
  where j.schedule_id = t.schedule_id and j.target_key = (t.target_key collate "default")
    and j.occurrence_at is not null and j.state = 'scheduled'
  order by j.run_at
  limit 1
) as next on true
where t.schedule_id = :scheduleId and (:after::text is null or t.target_key > :after::text collate "C")
order by t.target_key
limit :limit;

-- name: Count
select count(*)::int as total, count(*) filter (where enabled)::int as enabled
from {{schema}}.schedule_targets
where schedule_id = :scheduleId;

-- name: Rank
-- Where target :key stands among schedule :scheduleId's enabled targets in
-- placement order (:byHash: by md5(:salt || key), else by key): its rank
-- (0-based) and the count. For upcoming runs computed beyond the horizon.
select count(*) filter (where case when :byHash::boolean
                                 then (md5(:salt || t.target_key), t.target_key) < (md5(:salt || :key), :key::text collate "C")
                                 else t.target_key < :key::text collate "C" end)::int as rank,
       count(*)::int as total,
       bool_or(t.target_key = :key::text collate "C") as present
from {{schema}}.schedule_targets as t
where t.schedule_id = :scheduleId and t.enabled;

-- name: DeclareByKey
-- A cursor over schedule :scheduleId's enabled targets in key order (the
-- primary key's order), read a page at a time by FetchTargets.
declare rota_targets no scroll cursor for
select target_key from {{schema}}.schedule_targets
where schedule_id = :scheduleId and enabled
order by target_key;

-- name: DeclareByHash
-- The same in hash order (the 'spread' strategy): md5(:salt || key), then key.
declare rota_targets no scroll cursor for
select target_key from {{schema}}.schedule_targets
where schedule_id = :scheduleId and enabled
order by md5(:salt || target_key), target_key;

-- name: FetchTargets
fetch forward 10000 from rota_targets;

-- name: CloseTargets
close rota_targets;

-- name: FanOut
-- One page of one cadence of schedule :scheduleId: an execution per target
-- (:keys, placed at :offsets ms after occurrence :occurrence), run_at =
-- occurrence + offset, its catch-up deadline (:deadline, null for none)
-- moved by the same offset, the target's payload merged over the
-- schedule's. :aheadOnly (a cadence re-planned after a change) writes only
-- runs still ahead of now. An occurrence of a target already planned, run
-- or running is left alone (jobs_execution_once). Wakes the queue's
-- workers, which ask when the first comes due (NextDue): the wake-up is
-- delivered when the pass's transaction commits, after this statement, and
-- one per queue per transaction reaches them (the server folds equal
-- notifications).
with clock as materialized (select {{schema}}.clock_now() as now),
inserted as (
  insert into {{schema}}.jobs (queue, task, payload, state, priority, run_at, max_attempts,
    schedule_id, target_key, occurrence_at, schedule_version, deadline_at, concurrency_key,
    concurrency_limit, overlap, planned_offset_ms, distribution, created_at)
  select s.queue, s.task,
         case when t.payload is null then s.payload
              when jsonb_typeof(s.payload) = 'object' and jsonb_typeof(t.payload) = 'object'
                then s.payload || t.payload
              else t.payload end,
         'scheduled', s.priority, p.run_at, coalesce(s.max_attempts, 25), s.id, p.key,
         :occurrence::timestamptz, s.version, p.deadline_at,
         case when s.overlap <> 'allow' then 'schedule:' || s.id || ':' || p.key end,
         case when s.overlap = 'queue' then 1 end, nullif(s.overlap, 'allow'), p.offset_ms,
         :distribution, clock.now
  from unnest(:keys::text[], :offsets::bigint[]) as g(key, offset_ms)
  cross join lateral (
    select g.key, g.offset_ms,
           :occurrence::timestamptz + g.offset_ms * interval '1 millisecond' as run_at,
           :deadline::timestamptz + g.offset_ms * interval '1 millisecond' as deadline_at
  ) as p
  join {{schema}}.schedule_targets as t
    on t.schedule_id = :scheduleId and t.target_key = (p.key collate "C") and t.enabled
  join {{schema}}.schedules as s on s.id = :scheduleId
  cross join clock
  where not :aheadOnly::boolean or p.run_at > clock.now
  on conflict (schedule_id, target_key, occurrence_at)
    where occurrence_at is not null and state <> 'superseded'
  do nothing
  returning queue
)
select count(*)::int as inserted,
       case when count(*) > 0 then {{schema}}.notify_jobs(array[min(i.queue)]) end as notified
from inserted as i;

-- name: DeclareSource
-- A schedule's target source (the operator's query, spliced in by
-- Database.runSpliced where the statement reads it, and sent alone: one
-- statement) as a cursor. DECLARE refuses a query that writes (a
-- data-modifying WITH); its keys are compared in collation "C", as the
-- targets' are, whatever the source column's collation.
declare rota_target_source no scroll cursor for
select distinct src.key::text collate "C" as key
from ({{target_source}}) as src
where src.key is not null;

-- name: FetchSource
fetch forward 10000 from rota_target_source;

-- name: CloseSource
close rota_target_source;

-- name: MarkSeen
-- One page of keys the source returned (:keys): each is marked seen by this
-- transaction, and those new to schedule :scheduleId become targets (from
-- the source). Keys that are empty or over 200 bytes are counted, not added.
-- Returns the new keys.
with given as (
  select distinct g.key collate "C" as key from unnest(:keys::text[]) as g(key)
  where octet_length(g.key) between 1 and 200
),
seen as (
  update {{schema}}.schedule_targets as t
  set source_seen = pg_current_xact_id()::text::bigint
  from given as g
  where t.schedule_id = :scheduleId and t.target_key = g.key
  returning t.target_key
),
added as (
  insert into {{schema}}.schedule_targets (schedule_id, target_key, from_source, source_seen)
  select :scheduleId, g.key, true, pg_current_xact_id()::text::bigint from given as g
  where not exists (select 1 from seen where seen.target_key = g.key)
  on conflict (schedule_id, target_key) do nothing
  returning target_key
)
select array(select target_key from added) as added,
       (select count(*)::int from unnest(:keys::text[]) as k(key)
        where octet_length(k.key) not between 1 and 200) as invalid;

-- name: RemoveSourceTargets
-- Targets of schedule :scheduleId that its source added leave, with their
-- executions that have not started: with :unseenOnly, those the full read
-- of the source in this transaction did not return (MarkSeen); without, all
-- of them (the source was taken away; targets added by hand stay).
with gone as (
  delete from {{schema}}.schedule_targets as t
  where t.schedule_id = :scheduleId and t.from_source
    and (not :unseenOnly::boolean
         or t.source_seen is distinct from pg_current_xact_id()::text::bigint)
  returning t.target_key
),
dropped as (
  delete from {{schema}}.jobs as j
  using gone as g
  where j.schedule_id = :scheduleId and j.target_key = (g.target_key collate "default")
    and j.state in ('scheduled', 'available')
  returning j.id
)
select (select count(*)::int from gone) as removed,
       (select count(*)::int from dropped) as removed_executions;

-- name: CheckSource
-- Whether a target source can be read as DeclareSource reads it (spliced in
-- the same way): declared here, and the caller fetches one row and closes it.
declare rota_check_source no scroll cursor for
select src.key::text collate "C" as key from ({{target_source}}) as src;

-- name: FetchCheck
fetch forward 1 from rota_check_source;

-- name: CloseCheck
close rota_check_source;

-- name: NoteSource
-- What reading the target source found wrong (:note), on the schedule's
-- last_error, or null to clear an earlier note of the source's.
update {{schema}}.schedules
set last_error = :note::text
where id = :scheduleId and last_error is distinct from :note::text
  and (:note::text is not null or last_error like 'target source%');

-- name: SetFanOut
-- The schedule runs for its targets from now on (its first targets.add):
-- its version changes, so the caller supersedes its own grid's executions.
update {{schema}}.schedules
set fan_out = true, fill_at = '-infinity', updated_at = {{schema}}.clock_now()
where id = :scheduleId and not fan_out
returning version;

-- name: RestoreUnplaced
-- After a change re-planned the cadence in progress (schedule :scheduleId,
-- occurrence :occurrence) with only the runs still ahead: a target whose
-- new slot had passed gets back the run the change superseded (its old
-- slot, which was ahead), so no target loses this cadence and none runs in
-- a burst. (Superseded by this transaction: finished_at is its clock.)
with clock as materialized (select {{schema}}.clock_now() as now)
update {{schema}}.jobs as j
set state = 'scheduled', finished_at = null, last_error = null
from clock
where j.schedule_id = :scheduleId and j.occurrence_at = :occurrence::timestamptz
  and j.state = 'superseded' and j.attempts = 0 and j.finished_at = clock.now
  and j.target_key <> ''
  and not exists (
    select 1 from {{schema}}.jobs as k
    where k.schedule_id = j.schedule_id and k.target_key = j.target_key
      and k.occurrence_at = j.occurrence_at and k.state <> 'superseded')
returning j.id::text;

-- name: CadenceMinutes
-- How the written executions of one cadence (schedule :scheduleId,
-- occurrence :occurrence, runs before :until) fall per minute, through
-- jobs_schedule (schedule, run time).
select date_trunc('minute', run_at) as minute, count(*)::int as count
from {{schema}}.jobs
where schedule_id = :scheduleId and run_at >= :occurrence::timestamptz and run_at < :until
  and occurrence_at = :occurrence::timestamptz and target_key <> '' and state <> 'superseded'
group by 1
order by 1;
