-- Every statement that reads or updates {{schema}}.jobs (inserts: enqueue.sql).
-- Due-checks read the clock once per statement: (select {{schema}}.clock_now())
-- in a WHERE clause, or a MATERIALIZED "clock" CTE where the time is used per
-- row (a plain subquery would be inlined and evaluate clock_now() per row).

-- name: Claim
-- Takes up to :limit due jobs of queues :queues and tasks :tasks and leases
-- them to worker :workerId for :leaseMs ms, skipping rows other workers hold.
-- The attempt is counted here, so a worker that dies mid-job has used it; the
-- first :startNow (its free slots) are marked started now, the others when
-- they leave the worker's buffer (MarkStarted), and a rescue gives a job that
-- never started its attempt back, once.
--
-- Each queue first says how much it lets this claim take (queue_room,
-- migration 0012): nothing while paused, :limit without a concurrency limit,
-- and under a limit only the room it has left, at most :startNow (a limited
-- job is never held in a buffer: it would keep its slot without running).
-- Limited queues are locked by queue_room until this claim commits, in name
-- order, so claims of a limited queue take turns and each counts the jobs
-- the previous one started.
--
-- Candidates come per queue from the two claim indexes (led by
-- hashtext(queue), see migration 0006), each read in its own order: available
-- jobs by priority then age, and scheduled jobs that have come due by due
-- time; the best of those per queue, then the best :limit overall. (Among
-- scheduled jobs that came due together, the earliest due go first.) Jobs
-- :passOver are passed over before the cut, so they never crowd out others:
-- this worker still runs an earlier attempt of theirs (it timed out, or was
-- rescued from it), or still has its outcome to write, and one worker never
-- runs two attempts of a job at once; others may take them. (NOT IN over a
-- subquery is hashed once per claim; `id <> all(:passOver)` was checked
-- element by element for every candidate and made a 200-job claim a
-- millisecond slower.) Jobs of a concurrency key that has its limit running
-- are passed over too (key_full), so one busy key never crowds out the others.
with clock as materialized (select {{schema}}.clock_now() as now),
rooms as materialized (
  select q.name, r.room, r.limit_reached,
         case when r.room is null then :limit::int
              else least(:limit::int, r.room, greatest(:startNow::int, 0)) end as take
  from (select distinct u.name from unnest(:queues::text[]) as u(name) order by u.name) as q
  cross join lateral {{schema}}.queue_room(q.name) as r
),
next as (
  select c.*, r.room is not null as queue_limited
  from rooms as r
  cross join lateral (
    select * from (
      select id, priority, run_at, concurrency_key, concurrency_limit, overlap, deadline_at
      from {{schema}}.jobs
      where state = 'available' and hashtext(queue) = hashtext(r.name) and queue = r.name
        and task = any(:tasks::text[]) and id not in (select unnest(:passOver::bigint[]))
        and (concurrency_limit is null or not {{schema}}.key_full(concurrency_key, concurrency_limit))
      order by priority desc, run_at, id
      limit r.take
      for update skip locked
    ) as available
    union all
    select * from (
      select id, priority, run_at, concurrency_key, concurrency_limit, overlap, deadline_at
      from {{schema}}.jobs
      where state = 'scheduled' and hashtext(queue) = hashtext(r.name) and queue = r.name
        and task = any(:tasks::text[]) and id not in (select unnest(:passOver::bigint[]))
        and (concurrency_limit is null or not {{schema}}.key_full(concurrency_key, concurrency_limit))
        and run_at <= (select {{schema}}.clock_now())
      order by run_at, id
      limit r.take
      for update skip locked
    ) as came_due
    order by priority desc, run_at, id
    limit r.take
  ) as c
  order by c.priority desc, c.run_at, c.id
  limit :limit
),
-- The running jobs of each concurrency key with a limit among the
-- candidates, counted under the key's lock (key_running), in key order.
-- (In the order of the locks themselves, the keys' hashes: two keys with one
-- hash share a lock, and sorted by text they could be taken in two orders.)
keys as materialized (
  select k.key, {{schema}}.key_running(k.key) as running
  from (select distinct hashtext(n.concurrency_key) as hash, n.concurrency_key as key
        from next as n where n.concurrency_limit is not null order by 1, 2) as k
),
ranked as (
  select j.*,
         row_number() over (order by j.priority desc, j.run_at, j.id) as claim_rank,
         -- ranked among the candidates of its key that are not missed, so a
         -- missed one never takes a slot or makes a valid one look overlapping
         row_number() over (partition by j.concurrency_key, coalesce(j.deadline_at <= clock.now, false)
                            order by j.priority desc, j.run_at, j.id) as key_rank,
         j.deadline_at <= clock.now as past_deadline,
         j.queue_limited or j.concurrency_limit is not null as limited
  from next as j cross join clock
),
-- What each candidate becomes. Most become 'running'. A schedule execution
-- past its catch-up deadline becomes 'missed'. A job with a concurrency
-- limit starts while its key has room (its running jobs and the ones ahead
-- of it here fewer than the limit) and a slot of the worker is free; else it
-- stays available: 'held' by the limit (counted), or 'later' for want of a
-- free slot (so are executions of overlap 'queue': their key's limit is 1).
-- An execution with overlap 'skip' whose key already has a running job (or
-- an earlier candidate in this claim) is not started but recorded
-- 'skipped'; one of overlap 'queue' planned before executions carried a
-- limit is put back as 'scheduled' a second later (the unique index
-- jobs_running_concurrency refuses a second running one if two claims race).
decided as (
  select j.id, j.claim_rank,
         -- The first :startNow (the worker's free slots) start at once; the
         -- others wait in its buffer, and their start is recorded when it comes.
         j.claim_rank <= :startNow::bigint as starts_now,
         j.limited,
         case when j.past_deadline then 'missed'
              -- A limited job only into a free slot, never the buffer.
              when j.limited and j.claim_rank > :startNow::bigint then 'later'
              when j.concurrency_limit is not null then
                -- (a subquery, not a join: only limited candidates ask it)
                case when (select k.running from keys as k where k.key = j.concurrency_key)
                            + j.key_rank <= j.concurrency_limit then 'running'
                     else 'held' end
              when j.concurrency_key is null then 'running'
              when j.key_rank = 1
                   and not exists (select 1 from {{schema}}.jobs as r
                                   where r.concurrency_key = j.concurrency_key
                                     and r.state = 'running')
                then 'running'
              when j.overlap = 'skip' then 'skipped'
              else 'scheduled' end as to_state
  from ranked as j
),
claimed as (
update {{schema}}.jobs as j
set state = d.to_state,
    attempts = case when d.to_state = 'running' then j.attempts + 1 else j.attempts end,
    lease_holder = case when d.to_state = 'running' then :workerId end,
    lease_expires_at = case when d.to_state = 'running'
                            then clock.now + make_interval(secs => :leaseMs::double precision / 1000) end,
    started_at = case when d.to_state = 'running' and d.starts_now then clock.now end,
    run_at = case when d.to_state = 'scheduled' then clock.now + interval '1 second' else j.run_at end,
    finished_at = case when d.to_state in ('missed', 'skipped') then clock.now end,
    last_error = case
      when d.to_state = 'missed' then jsonb_build_object(
        'message', 'missed: claimed after its catch-up deadline', 'deadline', j.deadline_at, 'at', clock.now)
      when d.to_state = 'skipped' then jsonb_build_object(
        'message', 'skipped: the previous execution was still running (overlap skip)', 'at', clock.now)
      else j.last_error end
from decided as d, clock
-- Found by primary key, one candidate at a time: cut per queue to a room
-- that is not a constant, the candidates are estimated few, so the planner
-- joins them by the primary key. (An id list, `j.id = any(array(...))`, kept
-- the planner from a whole-table hash join when it estimated many; with the
-- per-queue cut it was re-checked at every probe, a millisecond a 200-job
-- claim.)
where j.id = d.id and d.to_state not in ('held', 'later')
returning j.id::text, j.state, j.queue, j.task, j.payload, j.priority, j.run_at, j.attempts,
          j.max_attempts, j.backoff, j.timeout_ms, j.created_at,
          j.unique_key, j.schedule_id::text, j.target_key, j.occurrence_at, j.started_at,
          -- For a schedule execution's lateness only: the client parses
          -- every timestamp it is sent, and most jobs have no use for it.
          case when j.schedule_id is not null then clock.now end as claimed_at,
          d.claim_rank, d.limited,
          -- Only for a worker with telemetry on (:traced): one without it
          -- never receives, nor parses, a trace context another process wrote.
          case when :traced::boolean then j.trace_context end as trace_context
),
-- What the limits held back in this claim, for the worker's claim:limited
-- event: jobs of keys at their limit, and the queues at theirs.
-- And what it put off for want of a free slot (candidates 'later', limited
-- queues cut to :startNow): the worker claims again when a slot frees.
held as (
  select d.held_by_key, r.queues_at_limit, d.later + r.cut as deferred,
         (select min(claim_rank) from claimed) as first_rank
  from (select (count(*) filter (where to_state = 'held'))::int as held_by_key,
               (count(*) filter (where to_state = 'later'))::int as later
        from decided) as d,
       (select coalesce(array_agg(name order by name) filter (where limit_reached), '{}'::text[])
                 as queues_at_limit,
               (count(*) filter (where room > 0 and take < least(:limit::int, room)))::int as cut
        from rooms) as r
)
-- In claim order: UPDATE returns rows in whatever order it met them (by id
-- here), and the worker starts the rows from the front, so the ones marked
-- started now must come first, and a higher priority before a lower. One row
-- with a null id when nothing was claimed, to carry what was held back.
-- (What was held back goes on the first row only: an array on every row was
-- parsed by the client for every claimed job.)
-- (The first claimed row need not be rank 1: a candidate ranked before it
-- may have been held or put off.)
select c.*, f.held_by_key, f.queues_at_limit, f.deferred
from held as h
left join claimed as c on true
left join lateral (select h.* where c.id is null or c.claim_rank = h.first_rank) as f on true
order by c.claim_rank;

-- name: ClaimOne
-- Claim for one job by id, as named in the wake-up of a lone enqueue
-- (InsertPlain): a worker with free slots and nothing buffered takes that job
-- through its primary key instead of reading the claim indexes. Only what
-- Claim would start as it is: available, of the worker's queues :queues and
-- tasks :tasks, with no concurrency key or deadline (schedule executions go
-- through Claim). Leased to worker :workerId for :leaseMs ms and started now;
-- :traced as in Claim.
-- No row when another worker took it first (SKIP LOCKED) or it is not such a
-- job; the worker then claims as usual.
with clock as materialized (select {{schema}}.clock_now() as now),
picked as (
  select id from {{schema}}.jobs
  where id = :id::bigint and state = 'available' and queue = any(:queues::text[])
    and task = any(:tasks::text[]) and concurrency_key is null and deadline_at is null
    -- neither paused nor limited (a limited queue's claims take turns: Claim)
    and not exists (select 1 from {{schema}}.queues as p
                    where p.name = queue and (p.paused or p.concurrency_limit is not null))
  for update skip locked
)
update {{schema}}.jobs as j
set state = 'running',
    attempts = j.attempts + 1,
    lease_holder = :workerId,
    lease_expires_at = clock.now + make_interval(secs => :leaseMs::double precision / 1000),
    started_at = clock.now
from picked, clock
where j.id = picked.id
returning j.id::text, j.state, j.queue, j.task, j.payload, j.priority, j.run_at, j.attempts,
          j.max_attempts, j.backoff, j.timeout_ms, j.created_at,
          j.unique_key, j.schedule_id::text, j.target_key, j.occurrence_at, j.started_at,
          case when j.schedule_id is not null then clock.now end as claimed_at, false as limited,
          case when :traced::boolean then j.trace_context end as trace_context;

-- name: NextDue
-- Milliseconds until the next scheduled job of these queues and tasks is due,
-- by the database clock (null: none). Available jobs are claimed, not waited
-- for; nor are the jobs a worker could not start when due: those of a paused
-- queue, of a queue or a key with its limit running (the outcome that frees
-- a slot wakes the queue).
select extract(epoch from (min(next.run_at) - (select {{schema}}.clock_now()))) * 1000 as due_in_ms
from unnest(:queues::text[]) as q(name)
cross join lateral (
  select run_at from {{schema}}.jobs
  where state = 'scheduled' and hashtext(queue) = hashtext(q.name) and queue = q.name
    and not {{schema}}.queue_paused(q.name) and not {{schema}}.queue_full(q.name)
    and task = any(:tasks::text[])
    and (concurrency_limit is null or not {{schema}}.key_full(concurrency_key, concurrency_limit))
  order by run_at
  limit 1
) as next;

-- The fence. The statements a worker runs on the jobs it holds
-- (CompleteByDelete, CompleteByKeep, Fail, Heartbeat, ExtendLease,
-- MarkStarted, ReleaseUnstarted) name each job by id and attempt and ask
-- that :workerId still hold its lease. They leave "state = 'running'" out:
-- a lease holder is set only while a job runs (the check
-- jobs_lease_only_running, migration 0023), and naming the state let the
-- planner read every running job through jobs_running_lease (its estimate
-- as old as the last ANALYZE: one row, if none ran then) and compare each
-- with each id of the batch, instead of probing the primary key once per id.
-- test/worker/fence-plans.test.ts holds the plans to that.
--
-- The three statements that write outcomes (CompleteByDelete,
-- CompleteByKeep, Fail) also wake queues :wake, those of the jobs among them
-- that ran under a concurrency limit: their slots free at this commit, and
-- the jobs the limit held back start then (the workers of those queues
-- claim). In the statement, not after it: one round trip per outcome batch.
-- Empty (most batches), it calls nothing.
--
-- Every statement that finishes a job (these three, ReleaseUnstarted,
-- Rescue, Cancel) also counts the outcomes of batch members among its rows
-- on their batches' rows (count_batch_outcomes, migration 0017), which
-- finishes a batch whose last member this was and enqueues its callback, in
-- the same transaction as the outcome. A succeeded member may be deleted
-- here, so nothing could count it later. The "counted" CTE aggregates the
-- statement's own rows and calls nothing when none has a batch: the cost for
-- jobs without one. It is MATERIALIZED so that it runs once whatever join
-- the planner picks (a subquery on the inner side of a nested loop is run
-- again for every outer row).

-- name: CompleteByDelete
-- Success with no retention: the row leaves at once. Fenced: only the lease
-- holder's current attempt counts; a job rescued meanwhile is left alone.
with written as (
  delete from {{schema}}.jobs as j
  using unnest(:ids::bigint[], :attempts::int[]) as done(id, attempt)
  where j.id = done.id and j.attempts = done.attempt and j.lease_holder = :workerId
  returning j.id::text, j.batch_id
),
counted as materialized (
  select case when count(*) > 0
              then {{schema}}.count_batch_outcomes(array_agg(batch_id), array_agg('succeeded'::text)) end
  from written where batch_id is not null
)
select w.id from written as w
cross join counted
cross join (select case when cardinality(:wake::text[]) > 0
                        then {{schema}}.notify_jobs(:wake::text[]) end) as woken;

-- name: CompleteByKeep
-- Success with a retention: the row stays as 'succeeded' until pruned.
with written as (
  update {{schema}}.jobs as j
  set state = 'succeeded', finished_at = (select {{schema}}.clock_now()),
      lease_holder = null, lease_expires_at = null
  from unnest(:ids::bigint[], :attempts::int[]) as done(id, attempt)
  where j.id = done.id and j.attempts = done.attempt and j.lease_holder = :workerId
  returning j.id::text, j.batch_id
),
counted as materialized (
  select case when count(*) > 0
              then {{schema}}.count_batch_outcomes(array_agg(batch_id), array_agg('succeeded'::text)) end
  from written where batch_id is not null
)
select w.id from written as w
cross join counted
cross join (select case when cardinality(:wake::text[]) > 0
                        then {{schema}}.notify_jobs(:wake::text[]) end) as woken;

-- name: Fail
-- Records failed attempts, fenced like completion. Per job: retry_ms null
-- means no retry is left ('failed', the dead-letter state); cancelled means
-- the job was cancelled while running, and so does a cancel request the
-- worker had not heard of yet. A job going back to the queue for its retry
-- while another job with its unique key waits there (enqueued while this one
-- ran) gives its key up (twin_queued): at most one queued job per key, and
-- neither is lost.
with clock as materialized (select {{schema}}.clock_now() as now),
failed as (
  select f.*, f.cancelled or j.cancel_requested_at is not null as cancel, j.unique_key
  from unnest(:ids::bigint[], :attempts::int[], :errors::text[], :retryMs::double precision[], :cancelled::boolean[])
    as f(id, attempt, error, retry_ms, cancelled)
  join {{schema}}.jobs as j
    on j.id = f.id and j.attempts = f.attempt and j.lease_holder = :workerId
),
-- Retries of two jobs with one key (both ran at once) in one batch: only the
-- first keeps it.
keyed as (
  select f.*,
         f.unique_key is not null and f.retry_ms is not null and not f.cancel and (
           row_number() over (partition by f.unique_key, f.retry_ms is not null and not f.cancel
                              order by f.id) > 1
           or {{schema}}.unique_key_queued(f.unique_key)
         ) as gives_key_up
  from failed as f
),
written as (
update {{schema}}.jobs as j
set state = case when f.cancel then 'cancelled'
                 when f.retry_ms is null then 'failed'
                 when f.retry_ms > 0 then 'scheduled'
                 else 'available' end,
    run_at = case when f.retry_ms is null or f.cancel then j.run_at
                  else clock.now + make_interval(secs => f.retry_ms / 1000.0) end,
    finished_at = case when f.retry_ms is null or f.cancel then clock.now end,
    unique_key = case when f.gives_key_up then null else j.unique_key end,
    -- When it failed, by the database clock, like every time in the table.
    last_error = f.error::jsonb || jsonb_build_object('at', clock.now),
    error_history = {{schema}}.append_error(j.error_history, f.error::jsonb || jsonb_build_object('at', clock.now)),
    lease_holder = null,
    lease_expires_at = null
from clock, keyed as f
where j.id = f.id and j.attempts = f.attempt and j.lease_holder = :workerId
returning j.id::text, j.state, j.run_at, j.batch_id
),
-- A member retried is not finished: only 'failed' and 'cancelled' count.
counted as materialized (
  select case when count(*) > 0
              then {{schema}}.count_batch_outcomes(array_agg(batch_id), array_agg(state)) end
  from written where batch_id is not null and state in ('failed', 'cancelled')
)
select w.id, w.state, w.run_at from written as w
cross join counted
cross join (select case when cardinality(:wake::text[]) > 0
                        then {{schema}}.notify_jobs(:wake::text[]) end) as woken;

-- name: Heartbeat
-- Extends the leases worker :workerId still holds, per job and attempt (:ids,
-- :attempts): pairs missing from the result were taken from it (rescued; an
-- attempt it still runs after the job was claimed again, even by itself, is
-- not kept alive by the new one). Also reports cancellation requests. A lease
-- a handler extended further (extendLease) keeps its later expiry.
update {{schema}}.jobs as j
set lease_expires_at = greatest(j.lease_expires_at,
                                (select {{schema}}.clock_now()) + make_interval(secs => :leaseMs::double precision / 1000))
from unnest(:ids::bigint[], :attempts::int[]) as held(id, attempt)
where j.id = held.id and j.attempts = held.attempt and j.lease_holder = :workerId
returning j.id::text, j.attempts, j.cancel_requested_at is not null as cancel_requested;

-- name: ExtendLease
update {{schema}}.jobs
set lease_expires_at = (select {{schema}}.clock_now()) + make_interval(secs => :leaseMs::double precision / 1000)
where id = :id and attempts = :attempt and lease_holder = :workerId
returning lease_expires_at;

-- name: MarkStarted
-- Records that buffered jobs of worker :workerId started their handlers.
update {{schema}}.jobs
set started_at = (select {{schema}}.clock_now())
where id = any(:ids::bigint[]) and lease_holder = :workerId and started_at is null;

-- name: ReleaseUnstarted
-- Hands claimed-but-never-started jobs (:ids with attempts :attempts) of
-- worker :workerId back at once (graceful stop): the attempt counted by Claim
-- is returned too. One cancelled meanwhile ends cancelled; one whose unique
-- key is queued again, or handed back here behind another with the same key,
-- gives the key up (see Fail).
with clock as materialized (select {{schema}}.clock_now() as now),
held as (
  select j.id, j.unique_key,
         case when j.cancel_requested_at is not null then 'cancelled' else 'available' end
           as next_state
  from unnest(:ids::bigint[], :attempts::int[]) as h(id, attempt)
  join {{schema}}.jobs as j on j.id = h.id and j.attempts = h.attempt
  where j.lease_holder = :workerId
),
keyed as (
  select h.*,
         h.unique_key is not null and h.next_state = 'available' and (
           row_number() over (partition by h.unique_key, h.next_state = 'available' order by h.id) > 1
           or {{schema}}.unique_key_queued(h.unique_key)
         ) as gives_key_up
  from held as h
),
released as (
  update {{schema}}.jobs as j
  set state = k.next_state,
      finished_at = case when k.next_state = 'cancelled' then clock.now end,
      attempts = j.attempts - 1, lease_holder = null, lease_expires_at = null, started_at = null,
      unique_key = case when k.gives_key_up then null else j.unique_key end
  from clock, keyed as k
  where j.id = k.id and j.lease_holder = :workerId
  returning j.id, j.queue, j.state, j.batch_id
),
counted as materialized (
  select case when count(*) > 0
              then {{schema}}.count_batch_outcomes(array_agg(batch_id), array_agg(state)) end
  from released where batch_id is not null and state = 'cancelled'
)
select released.id::text, released.queue, notified.done
from released
cross join counted
cross join (
  select {{schema}}.notify_jobs(array_agg(queue) filter (where state = 'available')) as done
  from released
) as notified;

-- name: Rescue
-- Makes jobs whose lease expired (the worker crashed, hung or lost the
-- database) claimable again, or 'failed' when that was the last attempt.
with clock as materialized (select {{schema}}.clock_now() as now),
expired as (
  -- refund: it never started (it waited in the dead worker's buffer), so the
  -- attempt counted at claim is given back, once per job.
  select id, started_at is null and unstarted_rescues = 0 as refund
  from {{schema}}.jobs
  where state = 'running' and lease_expires_at < (select now from clock)
  order by lease_expires_at
  limit :limit
  for update skip locked
),
decided as (
  select e.id, e.refund, j.unique_key,
         case when j.cancel_requested_at is not null then 'cancelled'
              when e.refund then 'available'
              when j.attempts >= j.max_attempts then 'failed'
              else 'available' end as next_state,
         jsonb_build_object(
           'message', 'lease expired: worker ' || coalesce(j.lease_holder, '?') ||
                      ' stopped renewing it (crashed, hung, or lost the database)',
           'attempt', j.attempts, 'at', (select now from clock), 'rescued', true) as error
  from expired as e
  join {{schema}}.jobs as j on j.id = e.id
),
-- Back to the queue while its unique key is queued again, or behind another
-- job of this rescue with the same key (two may run at once: the key covers
-- queued jobs only): the key goes (see Fail).
keyed as (
  select d.*,
         d.unique_key is not null and d.next_state = 'available' and (
           row_number() over (partition by d.unique_key, d.next_state = 'available' order by d.id) > 1
           or {{schema}}.unique_key_queued(d.unique_key)
         ) as gives_key_up
  from decided as d
),
rescued as (
  update {{schema}}.jobs as j
  set state = k.next_state,
      attempts = case when k.refund then j.attempts - 1 else j.attempts end,
      unstarted_rescues = case when k.refund then 1 else j.unstarted_rescues end,
      unique_key = case when k.gives_key_up then null else j.unique_key end,
      run_at = clock.now,
      finished_at = case when k.next_state in ('cancelled', 'failed') then clock.now end,
      last_error = k.error,
      error_history = {{schema}}.append_error(j.error_history, k.error),
      lease_holder = null,
      lease_expires_at = null
  from keyed as k, clock
  where j.id = k.id
  returning j.id, j.queue, j.task, j.state, j.attempts, j.batch_id
),
counted as materialized (
  select case when count(*) > 0
              then {{schema}}.count_batch_outcomes(array_agg(batch_id), array_agg(state)) end
  from rescued where batch_id is not null and state in ('failed', 'cancelled')
)
select rescued.id::text, rescued.queue, rescued.task, rescued.state, rescued.attempts, notified.done
from rescued
cross join counted
cross join (
  select {{schema}}.notify_jobs(array_agg(queue) filter (where state = 'available')) as done
  from rescued
) as notified;

-- name: Cancel
-- A queued job is cancelled at once; a running one is asked to stop (its
-- worker hears it on the cancel channel, or at its next heartbeat).
with target as (
  select id, state from {{schema}}.jobs where id = :id for update
),
changed as (
  update {{schema}}.jobs as j
  set state = case when t.state = 'running' then j.state else 'cancelled' end,
      finished_at = case when t.state = 'running' then j.finished_at
                         else (select {{schema}}.clock_now()) end,
      cancel_requested_at = case when t.state = 'running' then (select {{schema}}.clock_now())
                                 else j.cancel_requested_at end
  from target as t
  where j.id = t.id and t.state in ('scheduled', 'available', 'running')
  returning j.id, j.state, t.state as previous_state, j.batch_id
),
-- A queued member cancelled now counts; a running one counts when its
-- worker writes the cancellation (Fail).
counted as materialized (
  select case when count(*) > 0
              then {{schema}}.count_batch_outcomes(array_agg(batch_id), array_agg(state)) end
  from changed where batch_id is not null and state = 'cancelled'
),
notified as (
  select pg_notify({{channel:cancel}}, id::text) from changed where previous_state = 'running'
)
select t.id::text, coalesce(c.state, t.state) as state, c.previous_state,
       (select count(*) from notified) as notified
from target as t
cross join counted
left join changed as c on c.id = t.id;

-- name: Replay
-- Puts jobs in states :states ('failed', and for retryJob 'cancelled' too)
-- back in their queue with a fresh set of attempts (and no cancel request or
-- refund left from before). Filters are optional (null: any). A job whose
-- unique key is queued again meanwhile is left as it is, and of several
-- with one key only the last to finish is put back: at most one queued job
-- per key.
--
-- A bulk replay goes :limit jobs a statement (null: all at once), the last
-- to finish first, below the cursor (:beforeAt, :beforeId) the previous
-- statement returned as bottom_at/bottom_id: of a unique key's jobs, the
-- first statement to meet one meets its last to finish, and puts it back;
-- the later ones find the key queued and leave theirs. Every row returned
-- carries the cursor; a statement that put nothing back (every candidate's
-- key queued) still returns one row, with a null id, so the walk goes on.
with candidates as (
  select j.id, j.unique_key, j.finished_at, j.state
  from {{schema}}.jobs as j
  where j.state = any(:states::text[])
    and (:queue::text is null or j.queue = :queue)
    and (:task::text is null or j.task = :task)
    and (:from::timestamptz is null or j.finished_at >= :from)
    and (:to::timestamptz is null or j.finished_at < :to)
    and (:ids::bigint[] is null or j.id = any(:ids))
    and (:beforeId::bigint is null
         or (coalesce(j.finished_at, 'epoch'), j.id) < (:beforeAt::timestamptz, :beforeId))
    and (j.unique_key is null or not {{schema}}.unique_key_queued(j.unique_key))
  order by coalesce(j.finished_at, 'epoch') desc, j.id desc
  limit :limit
),
chosen as (
  select id, state from candidates where unique_key is null
  union all
  (select distinct on (unique_key) id, state from candidates where unique_key is not null
   order by unique_key, finished_at desc, id desc)
),
replayed as (
  update {{schema}}.jobs as j
  set state = 'available', attempts = 0, run_at = (select {{schema}}.clock_now()),
      finished_at = null, started_at = null, cancel_requested_at = null, unstarted_rescues = 0
  from chosen
  where j.id = chosen.id and j.state = chosen.state
  returning j.id, j.queue, j.batch_id, chosen.state as previous_state
),
-- A member of a batch still open takes its failure or cancellation back: it
-- will finish again. (One of a finished batch counted for nothing then either.)
counted as materialized (
  select case when count(*) > 0
              then {{schema}}.count_batch_outcomes(
                     array_agg(batch_id),
                     array_agg(case when previous_state = 'cancelled' then 'replayed_cancelled'
                                    else 'replayed' end)) end
  from replayed where batch_id is not null
)
select replayed.id::text, replayed.previous_state, notified.done,
       bottom.at as bottom_at, bottom.id::text as bottom_id
from (select coalesce(finished_at, 'epoch') as at, id from candidates
      order by coalesce(finished_at, 'epoch'), id limit 1) as bottom
left join replayed on true
cross join counted
cross join (select {{schema}}.notify_jobs(array_agg(queue)) as done from replayed) as notified;

-- name: PruneJobs
-- Deletes up to :limit finished jobs (not schedule executions) in states
-- :states that finished more than :keepMs ms ago. The literal conditions let
-- the partial index jobs_finished serve it whatever :states is.
with doomed as (
  select id from {{schema}}.jobs
  where state in ('succeeded', 'failed', 'cancelled', 'skipped', 'superseded', 'missed')
    and schedule_id is null
    and state = any(:states::text[])
    and finished_at < (select {{schema}}.clock_now()) - make_interval(secs => :keepMs::double precision / 1000)
  limit :limit
  for update skip locked
)
delete from {{schema}}.jobs as j using doomed where j.id = doomed.id;

-- name: PruneExecutions
-- The same for schedule executions (kept for their history), through
-- jobs_finished_executions.
with doomed as (
  select id from {{schema}}.jobs
  where state in ('succeeded', 'failed', 'cancelled', 'skipped', 'superseded', 'missed')
    and schedule_id is not null
    and state = any(:states::text[])
    and finished_at < (select {{schema}}.clock_now()) - make_interval(secs => :keepMs::double precision / 1000)
  limit :limit
  for update skip locked
)
delete from {{schema}}.jobs as j using doomed where j.id = doomed.id;

-- name: Get
select id::text, queue, task, payload, state, priority, run_at, attempts, max_attempts,
       backoff, timeout_ms, lease_holder, lease_expires_at, cancel_requested_at, unique_key,
       concurrency_key, concurrency_limit, batch_id::text,
       last_error, created_at, started_at, finished_at, schedule_id::text, target_key, occurrence_at,
       -- Jobs that failed before the history was kept have their last error.
       coalesce(error_history,
                case when last_error is not null then jsonb_build_array(last_error) end,
                '[]') as errors
from {{schema}}.jobs where id = :id;

-- name: Find
-- rota.findJobs and listJobs: the jobs below the keyset cursor :before (an
-- id), newest first, every filter optional (null: any), :limit of them. The
-- order is the primary key's, walked backwards from :before, so a page costs
-- the rows read until :limit match, whatever the table's size. (Ordered by
-- j.id: a bare "id" would name the output column, id::text, and sort the
-- ids as text, the whole table at every call.)
select j.id::text, j.queue, j.task, j.state, j.priority, j.run_at, j.attempts, j.max_attempts,
       j.last_error->>'message' as last_error, j.created_at, j.finished_at
from {{schema}}.jobs as j
where j.id < :before::bigint
  and (:state::text is null or j.state = :state)
  and (:queue::text is null or j.queue = :queue)
  and (:task::text is null or j.task = :task)
  and (:createdFrom::timestamptz is null or j.created_at >= :createdFrom)
  and (:createdTo::timestamptz is null or j.created_at < :createdTo)
order by j.id desc
limit :limit;

-- name: FindContaining
-- Find with a payload containment (:payload, JSON text: payload @> it),
-- without an index on payload: it reads at most :scan rows below :before,
-- by the primary key, whatever matches, and stops there. The last row it
-- reads comes back even when it does not match (scanned_to), so the caller
-- knows where the search stopped and can go on below it: the :scan-th, or
-- the table's lowest id below :before (bottom: there is nothing further).
-- It comes last, after every match, and only when fewer than :limit matched
-- before it.
select r.id::text, r.queue, r.task, r.state, r.priority, r.run_at, r.attempts, r.max_attempts,
       r.last_error->>'message' as last_error, r.created_at, r.finished_at,
       r.matched, r.n = :scan::bigint or r.bottom as scanned_to, r.bottom
from (
  select w.*,
         w.payload @> :payload::jsonb
           and (:state::text is null or w.state = :state)
           and (:queue::text is null or w.queue = :queue)
           and (:task::text is null or w.task = :task)
           and (:createdFrom::timestamptz is null or w.created_at >= :createdFrom)
           and (:createdTo::timestamptz is null or w.created_at < :createdTo) as matched
  from (
    -- Numbered as read; lead() looks one row ahead, past the scan's end too
    -- (window functions run before the LIMIT), so bottom is true only for
    -- the lowest id there is.
    select j.*, row_number() over by_id as n, lead(j.id) over by_id is null as bottom
    from {{schema}}.jobs as j
    where j.id < :before::bigint
    window by_id as (order by j.id desc)
    order by j.id desc
    limit :scan
  ) as w
) as r
where r.matched or r.n = :scan::bigint or r.bottom
order by r.id desc
limit :limit;
