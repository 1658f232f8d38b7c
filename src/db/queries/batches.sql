-- Every statement that reads or writes {{schema}}.batches (docs/batches.md).
-- A member's outcome is counted by the statements that write it (jobs.sql,
-- through count_batch_outcomes, migration 0017), not here.

-- name: Create
-- A batch of :total members, its callback (:task, :queue, :payload as JSON
-- text) and its expiry, :expiresInMs from now (null: never). The members are
-- inserted next, in the same transaction, with its id (InsertPlain or
-- CopyJobs, enqueue.sql).
with clock as materialized (select {{schema}}.clock_now() as now)
insert into {{schema}}.batches (total, callback_task, callback_queue, callback_payload,
                                created_at, expires_at)
select :total::int, :task, :queue, :payload::jsonb, clock.now,
       clock.now + make_interval(secs => :expiresInMs::double precision / 1000)
from clock
returning id::text, created_at, expires_at;

-- name: Expire
-- The orchestrator's expiry step: up to :limit open batches past their
-- expiry are finished as they stand, with the ids of their members still
-- open, and their callbacks enqueued. SKIP LOCKED: a batch whose last member
-- is being counted right now is left to that member (or to the next tick),
-- and two orchestrators never take the same batch. A row locked, then
-- finished by another transaction before this one reads it, is re-checked
-- against finished_at here, so it is not finished twice.
with clock as materialized (select {{schema}}.clock_now() as now),
due as (
  select id from {{schema}}.batches
  where finished_at is null and expires_at <= (select now from clock)
  order by expires_at, id
  limit :limit
  for no key update skip locked
),
expired as (
  update {{schema}}.batches as b
  set finished_at = clock.now, expired = true,
      callback_job_id = nextval('{{schema}}.jobs_id_seq'::regclass),
      open_job_ids = array(select j.id from {{schema}}.jobs as j
                           where j.batch_id = b.id and j.state in ('scheduled', 'available', 'running')
                           order by j.id)
  from due, clock
  where b.id = due.id and b.finished_at is null
  returning b
),
-- MATERIALIZED: evaluated once, whatever join the planner picks (a subquery
-- on the inner side of a nested loop is run again for every outer row).
enqueued as materialized (
  select {{schema}}.enqueue_batch_callbacks(array_agg(x.b)) as count from expired as x
)
select (e.b).id::text as id, (e.b).callback_job_id::text as callback_job_id,
       cardinality((e.b).open_job_ids) as open
from expired as e cross join enqueued;

-- name: Get
select id::text, total, succeeded, failed, cancelled, callback_task, callback_queue,
       callback_payload, callback_job_id::text, expired,
       (select array_agg(o.id::text order by o.id) from unnest(open_job_ids) as o(id)) as open_job_ids,
       created_at, expires_at, finished_at
from {{schema}}.batches
where id = :id;

-- name: List
-- Newest first; :state 'open', 'finished' (all its members did) or
-- 'expired', or null for any.
select id::text, total, succeeded, failed, cancelled, callback_task, callback_queue,
       callback_job_id::text, expired, created_at, expires_at, finished_at
from {{schema}}.batches
where (:state::text is null
       or (:state = 'open' and finished_at is null)
       or (:state = 'finished' and finished_at is not null and not expired)
       or (:state = 'expired' and expired))
order by id desc
limit :limit;

-- name: Prune
-- Deletes up to :limit batches that finished more than :keepMs ms ago (the
-- retention of history, retention.ts). Their members need not be gone: a
-- job keeps its batch id, which then names no batch.
with doomed as (
  select id from {{schema}}.batches
  where finished_at < (select {{schema}}.clock_now()) - make_interval(secs => :keepMs::double precision / 1000)
  limit :limit
  for update skip locked
)
delete from {{schema}}.batches as b using doomed where b.id = doomed.id;
