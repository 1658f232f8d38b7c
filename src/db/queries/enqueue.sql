-- Enqueue: the statements that insert jobs (queue/enqueue.ts).
-- The statement clock is a MATERIALIZED CTE: a plain subquery would be
-- inlined and evaluate clock_now() once per inserted row.

-- name: InsertPlain
-- Inserts a list of jobs without unique keys in one statement (enqueue and
-- enqueueMany inside the caller's transaction, short enqueueMany lists, and
-- grouped single enqueues). :jobs is a JSON array with one object per job:
-- queue, task, payload, priority, delay_ms | run_at, max_attempts, backoff,
-- timeout_ms, concurrency_key and concurrency_limit, and trace_context
-- (migration 0021) only from a Rota with telemetry on. :batchId: the batch
-- every job is a member of (batches.sql Create), null for none. Ids are
-- drawn up front, so the result rows come back in input order. :notify: send the workers' NOTIFY from this statement (:commitsAlone:
-- see below). Grouped enqueues under load pass false and send Wake after the
-- commit: a transaction that NOTIFYs holds a database-wide lock from its
-- commit record until its WAL flush, so such commits cannot share a flush
-- (group commit); with the NOTIFY inside, ten concurrent callers reached a
-- third of the one-row-per-commit rate here.
with clock as materialized (select {{schema}}.clock_now() as now),
-- jsonb_to_recordset reads a JSON null field as SQL NULL: a job whose
-- payload is JSON null keeps it as jsonb 'null' (the coalesce in the insert).
input as (
  select x.*, nextval('{{schema}}.jobs_id_seq'::regclass) as new_id
  from rows from (
    jsonb_to_recordset(:jobs::jsonb) as (queue text, task text, payload jsonb, priority int,
      delay_ms double precision, run_at timestamptz, max_attempts int, backoff jsonb, timeout_ms int,
      concurrency_key text, concurrency_limit int, trace_context jsonb)
  ) with ordinality as x(queue, task, payload, priority, delay_ms, run_at, max_attempts, backoff,
                         timeout_ms, concurrency_key, concurrency_limit, trace_context, ord)
),
planned as (
  select input.new_id, input.ord, input.queue, input.task, input.payload, input.priority,
         due.at as due_at, input.max_attempts, input.backoff, input.timeout_ms,
         input.concurrency_key, input.concurrency_limit, input.trace_context, clock.now,
         case when due.at > clock.now then 'scheduled' else 'available' end as initial_state
  from input
  cross join clock
  cross join lateral (
    select coalesce(input.run_at, clock.now + make_interval(secs => coalesce(input.delay_ms, 0) / 1000.0)) as at
  ) as due
),
inserted as (
  insert into {{schema}}.jobs (id, queue, task, payload, state, priority, run_at,
                               max_attempts, backoff, timeout_ms, concurrency_key,
                               concurrency_limit, created_at, batch_id, trace_context)
  overriding system value
  select new_id, queue, task, coalesce(payload, 'null'), initial_state, priority, due_at,
         max_attempts, backoff, timeout_ms, concurrency_key, concurrency_limit, now,
         :batchId::bigint, trace_context
  from planned
  order by ord
),
-- The wake-up (:notify) covers the queues of every job, delayed ones too.
-- :commitsAlone: the statement commits by itself on rota's own connection, so
-- the wake-up is delivered at once and may be precise: a single available job
-- names itself, "<queue> <id>", and an idle worker claims it by id (ClaimOne);
-- a queue whose jobs are all delayed reads "<queue> +<ms>" (notify_due), and
-- an idle worker sleeps until then instead of claiming now. Inside a caller's
-- transaction the wake-up names only queues: it is delivered at commit, maybe
-- long after this statement's clock, and PostgreSQL folds the same queue's
-- wake-ups of many enqueues into one.
notified as (
  select case when not :notify::boolean then null
              when not :commitsAlone::boolean then {{schema}}.notify_jobs(array_agg(distinct queue))
              when count(*) = 1 and min(initial_state) = 'available'
                then pg_notify({{channel:jobs}}, min(queue) || ' ' || min(new_id))
              else {{schema}}.notify_due(array_agg(queue),
                                         array_agg(extract(epoch from due_at - now)::float8 * 1000))
         end as done
  from planned
)
select p.new_id::text as id, p.initial_state as state, true as inserted, false as replaced
from planned as p cross join notified
order by p.ord;

-- name: Wake
-- Wakes the workers of queues :queues (the NOTIFY that InsertPlain sends from
-- inside its statement when :notify). Sent after the jobs' commit, or inside the
-- caller's transaction, where PostgreSQL delivers it on commit. :dueInMs: per
-- queue, the milliseconds until its earliest new job is due (0 or less: due
-- now; see notify_due); null wakes the queues as due now.
select {{schema}}.notify_due(:queues::text[], :dueInMs::float8[]);

-- name: DrawIds
-- Job ids and the statement clock for a COPY of :count jobs (queue/copy-jobs.ts),
-- in one pass over the drawn ids. One session draws ids in increasing order,
-- so when they are contiguous only the first is needed. When they are not
-- (another session drew in between) the client draws again with DrawIdList;
-- the ids drawn here are then only a gap in the sequence. The clock is sent
-- as microseconds since the epoch so the client computes run times without
-- losing precision.
with clock as materialized (select {{schema}}.clock_now() as now)
select span.first::text as first,
       span.last - span.first + 1 = :count::int as contiguous,
       (extract(epoch from clock.now) * 1000000)::bigint::text as now_us
from (
  select min(d.id) as first, max(d.id) as last
  from (select nextval('{{schema}}.jobs_id_seq'::regclass) as id from generate_series(1, :count::int)) as d
) as span cross join clock;

-- name: DrawIdList
-- DrawIds when its ids were not contiguous: the ids, in draw order, as a
-- list when they are again not contiguous (null when they are).
with drawn as materialized (
  select nextval('{{schema}}.jobs_id_seq'::regclass) as id, g.ord
  from generate_series(1, :count::int) with ordinality as g(n, ord)
),
span as (select min(id) as first, max(id) as last from drawn),
clock as materialized (select {{schema}}.clock_now() as now)
select span.first::text as first,
       case when span.last - span.first + 1 = :count::int then null
            else (select string_agg(id::text, ',' order by ord) from drawn) end as ids,
       (extract(epoch from clock.now) * 1000000)::bigint::text as now_us
from span cross join clock;

-- name: CopyJobs
-- The COPY that bulk enqueue streams its rows into (binary format; ids, states
-- and run times computed from DrawIds). COPY accepts values for the identity
-- column, and writes a row for a fraction of what an INSERT from a JSON
-- array costs.
copy {{schema}}.jobs (id, queue, task, payload, state, priority, run_at, max_attempts, backoff,
                      timeout_ms, created_at, concurrency_key, concurrency_limit, batch_id)
from stdin with (format binary);

-- name: CopyJobsTraced
-- CopyJobs with each row's trace_context (migration 0021), from a Rota with
-- telemetry on. A statement of its own, so a COPY without telemetry sends no
-- field for it: not even a null per row.
copy {{schema}}.jobs (id, queue, task, payload, state, priority, run_at, max_attempts, backoff,
                      timeout_ms, created_at, concurrency_key, concurrency_limit, batch_id,
                      trace_context)
from stdin with (format binary);

-- name: Insert
-- The same for lists where some jobs have a unique key. Per job, conflict
-- 'keep' leaves an existing queued job with the same key alone and returns it;
-- 'replace' overwrites its payload, run time and options while it has not
-- started. The SQL function enqueue (migration 0015) writes the same
-- row and overwrites the same columns: a change here is a migration there.
-- (Except trace_context, migration 0021: the SQL function writes none, and a
-- job it replaces keeps the one it had, linking to the earlier enqueue.) :commitsAlone as in InsertPlain: on rota's own connection, queues
-- whose written jobs are all delayed are woken with when they come due.
with clock as materialized (select {{schema}}.clock_now() as now),
input as (
  select x.*, nextval('{{schema}}.jobs_id_seq'::regclass) as new_id
  from rows from (
    jsonb_to_recordset(:jobs::jsonb) as (queue text, task text, payload jsonb, priority int,
      delay_ms double precision, run_at timestamptz, max_attempts int, backoff jsonb, timeout_ms int,
      concurrency_key text, concurrency_limit int, unique_key text, conflict text,
      trace_context jsonb)
  ) with ordinality as x(queue, task, payload, priority, delay_ms, run_at, max_attempts, backoff,
                         timeout_ms, concurrency_key, concurrency_limit, unique_key, conflict,
                         trace_context, ord)
),
planned as (
  select input.*, due.at as due_at, clock.now,
         case when due.at > clock.now then 'scheduled' else 'available' end as initial_state
  from input
  cross join clock
  cross join lateral (
    select coalesce(input.run_at, clock.now + make_interval(secs => coalesce(input.delay_ms, 0) / 1000.0)) as at
  ) as due
),
kept as (
  insert into {{schema}}.jobs (id, queue, task, payload, state, priority, run_at,
                               max_attempts, backoff, timeout_ms, concurrency_key,
                               concurrency_limit, unique_key, created_at, trace_context)
  overriding system value
  select new_id, queue, task, coalesce(payload, 'null'), initial_state, priority, due_at,
         max_attempts, backoff, timeout_ms, concurrency_key, concurrency_limit, unique_key, now,
         trace_context
  from planned
  where conflict is distinct from 'replace'
  order by ord
  on conflict (unique_key) where unique_key is not null and state in ('scheduled', 'available')
  do nothing
  returning id, queue, state, run_at
),
replaced as (
  insert into {{schema}}.jobs (id, queue, task, payload, state, priority, run_at,
                               max_attempts, backoff, timeout_ms, concurrency_key,
                               concurrency_limit, unique_key, created_at, trace_context)
  overriding system value
  select new_id, queue, task, coalesce(payload, 'null'), initial_state, priority, due_at,
         max_attempts, backoff, timeout_ms, concurrency_key, concurrency_limit, unique_key, now,
         trace_context
  from planned
  where conflict = 'replace'
  order by ord
  on conflict (unique_key) where unique_key is not null and state in ('scheduled', 'available')
  do update set payload = excluded.payload, run_at = excluded.run_at, state = excluded.state,
                priority = excluded.priority, max_attempts = excluded.max_attempts,
                backoff = excluded.backoff, timeout_ms = excluded.timeout_ms,
                concurrency_key = excluded.concurrency_key,
                concurrency_limit = excluded.concurrency_limit,
                queue = excluded.queue, task = excluded.task,
                trace_context = excluded.trace_context
  returning id, queue, state, run_at, unique_key, (xmax = 0) as inserted
),
notified as (
  select case when :commitsAlone::boolean
              then {{schema}}.notify_due(array_agg(woken.queue),
                                         array_agg(extract(epoch from woken.run_at - clock.now)::float8 * 1000))
              else {{schema}}.notify_jobs(array_agg(woken.queue)) end as done
  from (select queue, run_at from kept union all select queue, run_at from replaced) as woken
  cross join clock
)
select coalesce(k.id, r.id, existing.id)::text as id,
       coalesce(k.state, r.state, existing.state) as state,
       coalesce(k.id is not null, r.inserted, false) as inserted,
       r.id is not null and not r.inserted as replaced
from planned as p
cross join notified
left join kept as k on k.id = p.new_id
left join replaced as r on p.conflict = 'replace' and r.unique_key = p.unique_key
left join lateral (
  select j.id, j.state from {{schema}}.jobs as j
  where k.id is null and r.id is null and j.unique_key = p.unique_key
    and j.state in ('scheduled', 'available')
  limit 1
) as existing on true
order by p.ord;

-- name: QueuedByUniqueKey
-- A queued job with this unique key (after a 'keep' conflict with a job that
-- another transaction committed during the insert).
select id::text, state from {{schema}}.jobs
where unique_key = :uniqueKey and state in ('scheduled', 'available');
