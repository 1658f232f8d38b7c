-- Every statement on {{schema}}.queues (migration 0011): what is set per queue.

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

-- name: List
-- Every queue that has jobs or a row: paused or not, its jobs counted by
-- state, and how long its oldest available job has waited since it came due.
-- Counts every job row: a scan of the jobs table, for an operator's listing.
with clock as materialized (select {{schema}}.clock_now() as now),
counts as (
  select queue, state, count(*)::int as n,
         min(run_at) filter (where state = 'available') as oldest_available
  from {{schema}}.jobs
  group by queue, state
),
names as (
  select queue as name from counts
  union
  select name from {{schema}}.queues
)
select n.name, coalesce(p.paused, false) as paused,
       coalesce((select jsonb_object_agg(c.state, c.n) from counts as c where c.queue = n.name),
                '{}'::jsonb) as counts,
       (select extract(epoch from clock.now - min(c.oldest_available)) * 1000
        from counts as c where c.queue = n.name)::float8 as oldest_available_ms
from names as n
cross join clock
left join {{schema}}.queues as p on p.name = n.name
order by n.name;
