-- Every statement on {{schema}}.schedules, and on the jobs that are a
-- schedule's executions (see docs/scheduling.md).
-- The statement clock is a MATERIALIZED CTE wherever it is used per row.

-- name: Get
-- The schedule row (by name :name or id :id), with when it runs next and
-- when it last ran (schedule_times, migration 0009): what the API returns.
select s.id::text, s.name, s.task, s.payload, s.queue, s.priority, s.max_attempts, s.cron,
       s.every, s.anchor, s.timezone, s.catch_up,
       s.catch_up_window_ms::float8 as catch_up_window_ms, s.overlap, s.horizon, s.horizon_ms,
       s.enabled,
       s.paused, s.owner, s.handover, s.cursor_at, s.fill_at, s.last_planned_at, s.version,
       s.materialized_version, s.last_error, s.quiesced_at, s.created_at, s.updated_at,
       s.fan_out, s.window_ms::float8 as window_ms, s.distribution, s.batch_size,
       s.batch_every_ms::float8 as batch_every_ms, s.seed::float8 as seed, s.target_source,
       t.next_planned_at, t.last_run_at
from {{schema}}.schedules as s, {{schema}}.schedule_times(s.id) as t
where s.name = :name or s.id = :id;

-- name: Lock
-- The schedule row (by name :name or id :id), locked for a change made in the
-- caller's transaction: the columns of Get without the times read from the
-- executions, which planning and changes do not need (API calls that return
-- the schedule Get it after the change).
select s.id::text, s.name, s.task, s.payload, s.queue, s.priority, s.max_attempts, s.cron,
       s.every, s.anchor, s.timezone, s.catch_up,
       s.catch_up_window_ms::float8 as catch_up_window_ms, s.overlap, s.horizon, s.horizon_ms,
       s.enabled,
       s.paused, s.owner, s.handover, s.cursor_at, s.fill_at, s.last_planned_at, s.version,
       s.materialized_version, s.last_error, s.quiesced_at, s.created_at, s.updated_at,
       s.fan_out, s.window_ms::float8 as window_ms, s.distribution, s.batch_size,
       s.batch_every_ms::float8 as batch_every_ms, s.seed::float8 as seed, s.target_source
from {{schema}}.schedules as s
where s.name = :name or s.id = :id for update;

-- name: List
-- Schedules by name, with their times as in Get.
select s.id::text, s.name, s.task, s.queue, s.cron, s.every, s.anchor, s.timezone, s.enabled,
       s.paused, s.owner, s.last_error, s.horizon, s.horizon_ms, s.cursor_at, s.last_planned_at,
       s.fan_out, s.window_ms::float8 as window_ms, s.distribution, s.batch_size,
       s.batch_every_ms::float8 as batch_every_ms, t.next_planned_at, t.last_run_at
from {{schema}}.schedules as s, {{schema}}.schedule_times(s.id) as t
where (:owner::text is null or s.owner = :owner) and (:namePattern::text is null or s.name like :namePattern)
order by s.name
limit :limit;

-- name: Upsert
-- Creates or changes a schedule by name. A change of anything that shapes an
-- execution changes the generated version column.
insert into {{schema}}.schedules as s (name, task, payload, queue, priority, max_attempts, cron,
  every, anchor, timezone, catch_up, catch_up_window_ms, overlap, horizon, horizon_ms, owner,
  handover, fan_out, window_ms, distribution, batch_size, batch_every_ms, seed, target_source)
values (:name, :task, :payload::jsonb, :queue, :priority, :maxAttempts, :cron, :every, :anchor,
  :timezone, :catchUp, :catchUpWindowMs, :overlap, :horizon, :horizonMs, :owner,
  :owner = 'external', :targetSource::text is not null, :windowMs, :distribution, :batchSize,
  :batchEveryMs, :seed, :targetSource)
on conflict (name) do update
set task = excluded.task, payload = excluded.payload, queue = excluded.queue,
    priority = excluded.priority, max_attempts = excluded.max_attempts, cron = excluded.cron,
    every = excluded.every, anchor = excluded.anchor, timezone = excluded.timezone,
    catch_up = excluded.catch_up, catch_up_window_ms = excluded.catch_up_window_ms,
    overlap = excluded.overlap, horizon = excluded.horizon, horizon_ms = excluded.horizon_ms,
    window_ms = excluded.window_ms, distribution = excluded.distribution,
    batch_size = excluded.batch_size, batch_every_ms = excluded.batch_every_ms,
    seed = excluded.seed, target_source = excluded.target_source,
    -- A schedule fans out once it has targets (targets.add) or a source, and
    -- goes on fanning out: an upsert without a source does not undo it.
    fan_out = s.fan_out or excluded.fan_out,
    -- A new horizon (not part of the version) is filled at the next pass.
    fill_at = case when s.horizon is distinct from excluded.horizon
                     or s.horizon_ms is distinct from excluded.horizon_ms then '-infinity'
                   else s.fill_at end,
    -- A schedule in a hand-over changes owner only through handover/handback:
    -- importing the same crontab again must not undo a hand-over.
    owner = case when s.handover then s.owner else excluded.owner end,
    handover = s.handover or excluded.handover,
    updated_at = {{schema}}.clock_now()
returning id::text, version, owner, (xmax = 0) as inserted;

-- name: SetState
-- Pause/resume, enable/disable, hand over: :paused, :enabled, :owner (null
-- keeps each). :resetCursor sets the cursor NULL, which makes the next pass
-- take a baseline, so nothing that came due meanwhile fires in a burst.
update {{schema}}.schedules
set paused = coalesce(:paused, paused), enabled = coalesce(:enabled, enabled), owner = coalesce(:owner, owner),
    cursor_at = case when :resetCursor then null else cursor_at end,
    fill_at = '-infinity',
    last_error = case when :enabled then null else last_error end,
    quiesced_at = case when :enabled then null else quiesced_at end,
    updated_at = {{schema}}.clock_now()
where id = :id;

-- name: Delete
delete from {{schema}}.schedules where id = :id;

-- name: DueForFill
-- Schedules whose horizon needs filling (fill_at has come), oldest first,
-- with their live executions of future occurrences (see LiveFuture).
-- Drifted schedules are left to reconcile.
with clock as materialized (select {{schema}}.clock_now() as now)
select s.id::text, s.name, s.cron, s.every, s.anchor, s.timezone, s.catch_up,
       s.catch_up_window_ms::float8 as catch_up_window_ms, s.horizon, s.horizon_ms, s.cursor_at,
       s.version, s.fan_out, s.window_ms::float8 as window_ms, s.distribution, s.batch_size,
       s.batch_every_ms::float8 as batch_every_ms, s.seed::float8 as seed, s.target_source,
       live.count as live_future, live.first_run_at, live.last_occurrence, clock.now
from clock
cross join lateral (
  select * from {{schema}}.schedules as s
  where s.fill_at <= clock.now and s.enabled and not s.paused and s.owner = 'rota'
    and (s.materialized_version is null or s.materialized_version = s.version)
  order by s.fill_at
  limit :limit
) as s
cross join lateral (
  select count(*)::int as count, min(j.run_at) as first_run_at,
         max(j.occurrence_at) as last_occurrence
  from {{schema}}.jobs as j
  where j.schedule_id = s.id and j.target_key = '' and j.occurrence_at > clock.now
    and j.state = 'scheduled' and j.schedule_version = s.version
) as live;

-- name: LiveFuture
-- Schedule :scheduleId's live executions of occurrences after now by version
-- :version, and now. (By occurrence, not run time: a failed execution waiting
-- for its retry belongs to a past occurrence and holds no horizon slot.) Read
-- through jobs_execution_once: schedule, target '' (the schedule's own grid),
-- occurrence.
with clock as materialized (select {{schema}}.clock_now() as now)
select count(j.id)::int as count, min(j.run_at) as first_run_at,
       max(j.occurrence_at) as last_occurrence, clock.now
from clock
left join {{schema}}.jobs as j
  on j.schedule_id = :scheduleId and j.target_key = '' and j.occurrence_at > clock.now
 and j.state = 'scheduled' and j.schedule_version = :version
group by clock.now;

-- name: Materialize
-- Writes planned executions and advances cursors, for many schedules in one
-- statement. :schedules: per schedule {id, expected_cursor, version, cursor,
-- fill_at, last_planned_at}; :executions: {schedule_id, occurrence_at,
-- deadline_at, state, last_error}. A schedule is written only if its cursor
-- and version are still what the plan was made from (compare-and-set), and
-- executions only for schedules written: a second orchestrator, a stale
-- leader or a concurrent change writes nothing. The unique index
-- jobs_execution_once backs this up. :leaseName, :leaseHolder, :leaseEpoch:
-- the leader lease the writer must still hold, or null when an API call
-- materializes inline. :returnExecutions: send the written executions back
-- (for their events). :commitsAlone: the statement commits by itself (the
-- orchestrator's pass), so its wake-up is delivered at once.
with clock as materialized (select {{schema}}.clock_now() as now),
leader as materialized (
  select :leaseName::text is null
      or exists (select 1 from {{schema}}.leases as l, clock
                 where l.name = :leaseName and l.holder = :leaseHolder and l.epoch = :leaseEpoch and l.expires_at > clock.now)
      as ok
),
advanced as (
  update {{schema}}.schedules as s
  set cursor_at = i.cursor, fill_at = i.fill_at,
      last_planned_at = coalesce(i.last_planned_at, s.last_planned_at),
      materialized_version = s.version,
      -- Planned: a reason it could not be planned before no longer holds.
      last_error = null
  from jsonb_to_recordset(:schedules::jsonb) as i(id bigint, expected_cursor timestamptz, version text,
                                          cursor timestamptz, fill_at timestamptz,
                                          last_planned_at timestamptz),
       leader
  where leader.ok and s.id = i.id and s.cursor_at is not distinct from i.expected_cursor
    and s.version = i.version and s.enabled and not s.paused and s.owner = 'rota'
  returning s.id, s.task, s.queue, s.priority, s.payload, s.max_attempts, s.version, s.overlap
),
inserted as (
  insert into {{schema}}.jobs (queue, task, payload, state, priority, run_at, max_attempts,
    schedule_id, target_key, occurrence_at, schedule_version, deadline_at, concurrency_key,
    concurrency_limit, overlap, last_error, finished_at, created_at)
  select a.queue, a.task, a.payload, e.state, a.priority, e.occurrence_at,
         coalesce(a.max_attempts, 25), a.id, '', e.occurrence_at, a.version, e.deadline_at,
         case when a.overlap <> 'allow' then 'schedule:' || a.id || ':' end,
         case when a.overlap = 'queue' then 1 end, nullif(a.overlap, 'allow'), e.last_error,
         case when e.state = 'missed' then clock.now end, clock.now
  from jsonb_to_recordset(:executions::jsonb) as e(schedule_id bigint, occurrence_at timestamptz,
                                          deadline_at timestamptz, state text, last_error jsonb)
  join advanced as a on a.id = e.schedule_id
  cross join clock
  order by e.occurrence_at
  on conflict (schedule_id, target_key, occurrence_at)
    where occurrence_at is not null and state <> 'superseded'
  do nothing
  returning id, schedule_id, queue, task, state, run_at, occurrence_at
),
-- Workers of these queues learn when the new executions come due, and an idle
-- one sleeps until then (notify_due). Inside an API call's transaction
-- (:commitsAlone false) the wake-up is delivered at its commit, however late:
-- there it names only the queues.
notified as (
  select case when :commitsAlone::boolean
              then {{schema}}.notify_due(array_agg(inserted.queue),
                                         array_agg(extract(epoch from inserted.run_at - clock.now)::float8 * 1000))
              else {{schema}}.notify_jobs(array_agg(inserted.queue)) end as done
  from inserted cross join clock
  where inserted.state = 'scheduled'
)
-- The executions themselves come back only when :returnExecutions (someone
-- listens for their events); otherwise only the counts, not one JSON object
-- per row.
select (select count(*)::int from advanced) as advanced,
       (select count(*)::int from inserted) as inserted,
       case when :returnExecutions::boolean then
         (select coalesce(jsonb_agg(jsonb_build_object(
            'id', id::text, 'schedule_id', schedule_id::text, 'queue', queue, 'task', task,
            'state', state, 'run_at', run_at, 'occurrence_at', occurrence_at)), '[]'::jsonb)
          from inserted)
       end as executions,
       (select done from notified) as notified;

-- name: Supersede
-- Executions of schedule :scheduleId that have not started (no attempt yet)
-- become 'superseded': they never run, and history shows why (:reason). With
-- :keepVersion, only those planned by another version, and only those not due
-- yet (a change: due ones belong to the past grid and run as planned); with
-- :keepVersion null, all of them, due or not (pause, disable, hand-back:
-- nothing more may start). The executions come back only when
-- :returnRows (someone listens for their events): a fanned-out schedule has
-- one per target; otherwise one row with their count.
with clock as materialized (select {{schema}}.clock_now() as now),
superseded as (
  update {{schema}}.jobs as j
  set state = 'superseded', finished_at = clock.now,
      last_error = jsonb_build_object('message', :reason::text, 'at', clock.now)
  from clock
  where j.schedule_id = :scheduleId and j.state in ('scheduled', 'available') and j.attempts = 0
    and (:keepVersion::text is null or (j.schedule_version is distinct from :keepVersion and j.run_at > clock.now))
  returning j.id, j.occurrence_at, j.run_at
)
select id::text, occurrence_at, run_at, 1 as count from superseded where :returnRows::boolean
union all
select null, null, null, count(*)::int from superseded where not :returnRows::boolean;

-- name: RemoveUnstarted
-- Deleting a schedule: its executions that have not started go with it.
delete from {{schema}}.jobs
where schedule_id = :scheduleId and state in ('scheduled', 'available')
returning id::text;

-- name: Skip
-- Skips one execution that has not started: the next one (of target
-- :target, when given), or execution :executionId.
with target as (
  select id from {{schema}}.jobs
  where schedule_id = :scheduleId and state in ('scheduled', 'available')
    and (:executionId::bigint is null or id = :executionId)
    and (:target::text is null or target_key = :target)
  order by run_at, id
  limit 1
  for update
)
update {{schema}}.jobs as j
set state = 'skipped', finished_at = {{schema}}.clock_now(),
    last_error = jsonb_build_object('message', 'skipped by an operator', 'at', {{schema}}.clock_now())
from target
where j.id = target.id
returning j.id::text, j.occurrence_at, j.run_at, j.target_key;

-- name: Trigger
-- One extra execution now, outside the grid (occurrence_at stays null, the
-- cursor is untouched), for target :target ('' for a schedule's own grid;
-- a target's payload is merged over the schedule's as in FanOut).
with inserted as (
  insert into {{schema}}.jobs (queue, task, payload, state, priority, run_at, max_attempts,
    schedule_id, target_key, schedule_version, concurrency_key, concurrency_limit, overlap,
    created_at)
  select s.queue, s.task,
         case when t.payload is null then s.payload
              when jsonb_typeof(s.payload) = 'object' and jsonb_typeof(t.payload) = 'object'
                then s.payload || t.payload
              else t.payload end,
         'available', s.priority, {{schema}}.clock_now(),
         coalesce(s.max_attempts, 25), s.id, :target, s.version,
         case when s.overlap <> 'allow' then 'schedule:' || s.id || ':' || :target end,
         case when s.overlap = 'queue' then 1 end, nullif(s.overlap, 'allow'),
         {{schema}}.clock_now()
  from {{schema}}.schedules as s
  left join {{schema}}.schedule_targets as t
    on t.schedule_id = s.id and t.target_key = :target::text collate "C"
  where s.id = :scheduleId
  returning id, queue, run_at
)
select inserted.id::text, inserted.run_at, {{schema}}.notify_jobs(array[inserted.queue]) as notified
from inserted;

-- name: Planned
-- A schedule's executions that have not started, from :from on, in run order.
select id::text, state, run_at, occurrence_at, target_key, schedule_version,
       planned_offset_ms::float8 as offset_ms
from {{schema}}.jobs
where schedule_id = :scheduleId and state in ('scheduled', 'available') and run_at >= :from
  and (:target::text is null or target_key = :target)
order by run_at, id
limit :limit;

-- name: History
-- A schedule's executions, newest first: planned, running and finished
-- (including the ones that did not run: skipped, superseded, missed).
select id::text, state, run_at, occurrence_at, target_key, schedule_version, attempts,
       started_at, finished_at, last_error
from {{schema}}.jobs
where schedule_id = :scheduleId and (:states::text[] is null or state = any(:states))
order by run_at desc, id desc
limit :limit;

-- name: Quiesce
-- A spec that does not parse (written by hand in SQL): the schedule is
-- disabled once, with the reason, instead of failing every pass.
update {{schema}}.schedules
set enabled = false, last_error = :reason, quiesced_at = {{schema}}.clock_now()
where id = :id and version = :version and enabled
returning id::text, name;

-- name: AwaitPlanner
-- A change an API call could not plan (its distribution is registered only
-- where the orchestrators run): the schedule is marked planned as of this
-- version, so it is not taken for drift, and due now, so the next pass
-- plans it; last_error says why until then.
update {{schema}}.schedules
set materialized_version = version, fill_at = '-infinity', last_error = :reason
where id = :id;

-- name: Delay
-- A schedule whose write failed for a reason that may pass: the reason is kept
-- in last_error and the next visit waits :delayMs ms, so the others go first.
update {{schema}}.schedules
set fill_at = {{schema}}.clock_now() + make_interval(secs => :delayMs::double precision / 1000),
    last_error = :reason
where id = :id
returning id::text;

-- name: Drifted
-- Schedules changed since their executions were made (by hand in SQL, or a
-- change whose transaction could not materialize).
-- (Ordered by the table's bigint id, s.id, not the text output column, so
-- the partial index schedules_drifted serves it.)
select s.id::text as id, s.name, s.version from {{schema}}.schedules as s
where s.materialized_version is distinct from s.version and s.materialized_version is not null
  and s.enabled and not s.paused and s.owner = 'rota'
order by s.id
limit :limit;

-- name: WatchdogSlice
-- The next :limit schedules after id :after (the slice; the next resumes after
-- its last id, and a short one means the scan reached the end and wraps), and
-- among them those whose future executions vanished (deleted by hand) or whose
-- cursor is not past its latest planned occurrence: one row per such
-- candidate, each carrying the slice's end, or one row with only the end.
-- (A fanned-out schedule has no rows on its own grid to look at; its
-- cadences are counted from its cursor, see fan-out.ts.)
with clock as materialized (select {{schema}}.clock_now() as now),
slice as materialized (
  select * from {{schema}}.schedules where id > :after order by id limit :limit
),
span as (select max(id)::text as slice_last, count(*)::int as slice_size from slice)
select span.slice_last, span.slice_size, c.*
from span
left join lateral (
  select s.id::text, s.cursor_at, s.cron, s.every, s.anchor, s.timezone,
         live.last_occurrence, clock.now
  from slice as s
  cross join clock
  cross join lateral (
    select max(j.occurrence_at) as last_occurrence
    from {{schema}}.jobs as j
    where j.schedule_id = s.id and j.target_key = '' and j.occurrence_at > clock.now
      and j.state <> 'superseded'
  ) as live
  where s.enabled and not s.paused and s.owner = 'rota' and s.cursor_at is not null
    and not s.fan_out
    and ((live.last_occurrence is null and s.fill_at > clock.now)
         or s.cursor_at <= live.last_occurrence)
  order by s.id
) as c on true;

-- name: RepairCursor
update {{schema}}.schedules
set cursor_at = :cursor, fill_at = '-infinity'
where id = :id and cursor_at is not distinct from :expectedCursor
returning id::text;

-- name: HandoverCandidates
-- Schedules taking part in a hand-over from another scheduler (created as
-- external), by name :names, or all with :names null; each with a stable
-- bucket 0-99 from a hash of its name, so raising --percent only ever adds
-- schedules.
select id::text, name, owner, (hashtext(name)::bigint + 2147483648) % 100 as bucket
from {{schema}}.schedules
where handover and (:names::text[] is null or name = any(:names))
order by name;
