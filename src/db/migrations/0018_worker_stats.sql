-- What a dashboard shows of the workers without reading the jobs table:
-- which workers were seen lately, and each queue's outcomes per minute.
--
-- Each worker counts its outcomes in memory and reports them with its own
-- row every statsIntervalMs, in one statement (worker-stats.sql Flush): no
-- statement per job. Rows are small and few (one per worker, one per queue
-- and minute), and the retention pruning deletes those 24 hours old.

-- One row per worker, written by the worker itself: when it started, when
-- its last report came (by the database clock), when it stopped (null while
-- it runs, or when it died without saying so: last_seen_at then stops
-- moving), and how many jobs it was running at that report.
create table {{schema}}.workers (
  id text primary key,
  host text not null,
  pid integer not null,
  queues text[] not null,
  tasks text[] not null,
  concurrency integer not null,
  started_at timestamptz not null,
  last_seen_at timestamptz not null,
  stopped_at timestamptz,
  running integer not null default 0
);

-- workers.list() (seen within a window, newest first) and pruning by age.
create index workers_last_seen on {{schema}}.workers (last_seen_at);

-- Outcomes per queue and minute (the minute of the database clock, in UTC),
-- summed over every worker: succeeded; failed for good (no attempt left);
-- retried (a failed attempt with another to come); cancelled while a worker
-- held the job. Jobs that end without a worker (cancelled while queued, a
-- rescue's last attempt) are not counted here.
create table {{schema}}.queue_minutes (
  queue text not null,
  minute timestamptz not null,
  succeeded integer not null default 0,
  failed integer not null default 0,
  retried integer not null default 0,
  cancelled integer not null default 0,
  primary key (queue, minute)
);

-- throughput() across all queues, and pruning by age: the primary key leads
-- with the queue, which neither query fixes.
create index queue_minutes_minute on {{schema}}.queue_minutes (minute);

-- rota.retryJob(id) puts a cancelled job back in its queue as well as a
-- failed one (replayFailed's statement, jobs.sql Replay): a cancelled member
-- of an open batch takes its cancellation back ('replayed_cancelled'), as a
-- failed one takes back its failure ('replayed'), so the batch still waits
-- for it and finishes once, when it ends again. Otherwise as in 0017.
create or replace function {{schema}}.count_batch_outcomes(member_batches bigint[], outcomes text[])
  returns integer
  language plpgsql volatile
as $$
declare
  finished {{schema}}.batches[];
  clock timestamptz := {{schema}}.clock_now();
begin
  -- The rows are locked in id order first: two transactions counting members
  -- of the same batches take them in one order and never deadlock. A
  -- VOLATILE function, so the update below, a statement of its own, reads
  -- the counts the previous holder of a lock committed.
  perform 1 from {{schema}}.batches
  where id = any(member_batches) and finished_at is null
  order by id
  for no key update;
  with tally as (
    select m.batch_id,
           count(*) filter (where m.outcome = 'succeeded')::int as succeeded,
           (count(*) filter (where m.outcome = 'failed')
             - count(*) filter (where m.outcome = 'replayed'))::int as failed,
           (count(*) filter (where m.outcome = 'cancelled')
             - count(*) filter (where m.outcome = 'replayed_cancelled'))::int as cancelled
    from unnest(member_batches, outcomes) as m(batch_id, outcome)
    where m.batch_id is not null
    group by m.batch_id
  ),
  counted as (
    update {{schema}}.batches as b
    set succeeded = b.succeeded + t.succeeded,
        failed = b.failed + t.failed,
        cancelled = b.cancelled + t.cancelled,
        finished_at = case when b.succeeded + t.succeeded + b.failed + t.failed
                                + b.cancelled + t.cancelled >= b.total then clock end,
        callback_job_id = case when b.succeeded + t.succeeded + b.failed + t.failed
                                    + b.cancelled + t.cancelled >= b.total
                               then nextval('{{schema}}.jobs_id_seq'::regclass) end
    from tally as t
    where b.id = t.batch_id and b.finished_at is null
    returning b
  )
  select array_agg(c.b) into finished from counted as c where (c.b).finished_at is not null;
  if finished is null then return 0; end if;
  return {{schema}}.enqueue_batch_callbacks(finished);
end
$$;

-- The index rota.findJobs's rare states use, jobs_ended_by_state, is built
-- by 0020 without blocking the table's writers (CREATE INDEX CONCURRENTLY).
