-- Every statement on {{schema}}.queues (migrations 0011, 0012): what is set per queue.

-- name: SetPaused
-- Pauses or resumes queue :name, creating its row if it has none, and tells
-- the workers in the same statement: "pause <queue>" on the queues channel
-- (they hand back the jobs of that queue they hold but have not started), or
-- for a resume the queue's name on the jobs channel (they claim again).
with written as (
  insert into {{schema}}.queues as q (name, paused, updated_at)
  values (:name, :paused, {{schema}}.clock_now())
  on conflict (name) do update set paused = excluded.paused, updated_at = excluded.updated_at
  returning q.name, q.paused
)
select w.name, w.paused,
       case when w.paused then pg_notify({{channel:queues}}, 'pause ' || w.name)
            else pg_notify({{channel:jobs}}, w.name) end is null as notified
from written as w;

-- name: SetLimit
-- Sets queue :name's concurrency limit (null: none), creating its row if it
-- has none, and wakes its workers: a raised or lifted limit lets them start
-- what it held back. (A lowered one needs no wake-up: claims read it.) Jobs
-- running beyond a lowered limit finish; none starts until the queue is
-- under it again.
with written as (
  insert into {{schema}}.queues as q (name, concurrency_limit, updated_at)
  values (:name, :limit, {{schema}}.clock_now())
  on conflict (name) do update
    set concurrency_limit = excluded.concurrency_limit, updated_at = excluded.updated_at
  returning q.name, q.paused, q.concurrency_limit
)
select w.name, w.paused, w.concurrency_limit, pg_notify({{channel:jobs}}, w.name) is null as notified
from written as w;

-- name: List
-- Every queue that has jobs or a row: paused or not, its concurrency limit,
-- its jobs counted by state, how long its oldest available job has waited
-- since it came due, and how many available jobs wait for a limit: in a
-- limited queue, those beyond the room its limit leaves; in any queue, those
-- whose concurrency key has its limit running (the larger of the two).
-- Counts every job row: a scan of the jobs table, for an operator's listing.
with clock as materialized (select {{schema}}.clock_now() as now),
per_state as (
  select queue, state, count(*)::int as n,
         min(run_at) filter (where state = 'available') as oldest_available,
         count(*) filter (where state = 'available' and concurrency_limit is not null
                            and {{schema}}.key_full(concurrency_key, concurrency_limit)) as key_held
  from {{schema}}.jobs
  group by queue, state
),
per_queue as (
  select queue as name, jsonb_object_agg(state, n) as counts,
         min(oldest_available) as oldest_available,
         coalesce(sum(n) filter (where state = 'available'), 0) as available,
         coalesce(sum(n) filter (where state = 'running'), 0) as running,
         sum(key_held) as key_held
  from per_state
  group by queue
)
select coalesce(c.name, p.name) as name, coalesce(p.paused, false) as paused,
       p.concurrency_limit, coalesce(c.counts, '{}'::jsonb) as counts,
       (extract(epoch from clock.now - c.oldest_available) * 1000)::float8 as oldest_available_ms,
       greatest(coalesce(c.key_held, 0),
                case when p.concurrency_limit is null then 0
                     else greatest(0, c.available - greatest(0, p.concurrency_limit - c.running)) end
       )::int as waiting_for_limit
from per_queue as c
full join {{schema}}.queues as p on p.name = c.name
cross join clock
order by 1;
