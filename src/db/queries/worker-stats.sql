-- Every statement on {{schema}}.workers and {{schema}}.queue_minutes
-- (migration 0018): what workers report of themselves, and what the
-- dashboard reads back.

-- name: Flush
-- A worker's report, in one statement on its bookkeeping connection: its row
-- upserted (seen now by the database clock, :running jobs running, stopped
-- now when :stopping; started now when :starting, its first report since it
-- started, so a worker id used again starts afresh), and its outcomes since
-- the last report added to the current minute of each queue. The counts are
-- per queue (:countQueues[i] with :succeeded[i], ...), added in queue order:
-- two workers reporting at once lock the same minute rows in one order and
-- never deadlock.
with clock as materialized (
  select {{schema}}.clock_now() as now,
         date_trunc('minute', {{schema}}.clock_now(), 'UTC') as minute
),
seen as (
  insert into {{schema}}.workers as w
    (id, host, pid, queues, tasks, concurrency, started_at, last_seen_at, stopped_at, running)
  select :id, :host, :pid::int, :queues::text[], :tasks::text[], :concurrency::int, clock.now,
         clock.now, case when :stopping::boolean then clock.now end, :running::int
  from clock
  on conflict (id) do update
    set host = excluded.host, pid = excluded.pid, queues = excluded.queues,
        tasks = excluded.tasks, concurrency = excluded.concurrency,
        started_at = case when :starting::boolean then excluded.started_at else w.started_at end,
        last_seen_at = excluded.last_seen_at, stopped_at = excluded.stopped_at,
        running = excluded.running
  returning w.id
),
counted as (
  insert into {{schema}}.queue_minutes as m (queue, minute, succeeded, failed, retried, cancelled)
  select c.queue, clock.minute, c.succeeded, c.failed, c.retried, c.cancelled
  from unnest(:countQueues::text[], :succeeded::int[], :failed::int[], :retried::int[],
              :cancelled::int[]) as c(queue, succeeded, failed, retried, cancelled)
  cross join clock
  order by c.queue
  on conflict (queue, minute) do update
    set succeeded = m.succeeded + excluded.succeeded, failed = m.failed + excluded.failed,
        retried = m.retried + excluded.retried, cancelled = m.cancelled + excluded.cancelled
  returning m.queue
)
select (select count(*) from seen)::int as seen, (select count(*) from counted)::int as counted;

-- name: ListWorkers
-- Workers seen within the last :seenWithinMs ms (stopped ones too, while
-- their last report is that recent), the last seen first.
select id, host, pid, queues, tasks, concurrency, started_at, last_seen_at, stopped_at, running
from {{schema}}.workers
where last_seen_at >= (select {{schema}}.clock_now())
                      - make_interval(secs => :seenWithinMs::double precision / 1000)
order by last_seen_at desc, id;

-- name: Throughput
-- Each queue's outcomes per minute over the last :minutes minutes (this one
-- included), of queue :queue only unless it is null; minutes with no row
-- (nothing finished) are left out.
select queue, minute, succeeded, failed, retried, cancelled
from {{schema}}.queue_minutes
where minute > date_trunc('minute', (select {{schema}}.clock_now()), 'UTC')
               - make_interval(mins => :minutes::int)
  and (:queue::text is null or queue = :queue)
order by queue, minute;

-- name: PruneMinutes
-- Deletes up to :limit minutes older than :keepMs ms (the retention pruning).
with doomed as (
  select queue, minute from {{schema}}.queue_minutes
  where minute < (select {{schema}}.clock_now()) - make_interval(secs => :keepMs::double precision / 1000)
  limit :limit
  for update skip locked
)
delete from {{schema}}.queue_minutes as m
using doomed where m.queue = doomed.queue and m.minute = doomed.minute;

-- name: PruneWorkers
-- Deletes up to :limit workers stopped, or not seen, for more than :keepMs
-- ms. A stopped worker's last report is the one that stopped it, so its
-- last_seen_at says both.
with doomed as (
  select id from {{schema}}.workers
  where last_seen_at < (select {{schema}}.clock_now()) - make_interval(secs => :keepMs::double precision / 1000)
  limit :limit
  for update skip locked
)
delete from {{schema}}.workers as w using doomed where w.id = doomed.id;
