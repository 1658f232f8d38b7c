-- Batches (docs/batches.md): a set of jobs with a completion callback job,
-- enqueued exactly once when every member has finished (succeeded, failed
-- for good or cancelled), or when the batch expires with members still open
-- (the orchestrator's expiry step, batches.sql Expire).
--
-- The counts live on the batch's row, moved by the statement that writes a
-- member's outcome, in its transaction: a succeeded member may be deleted by
-- that very statement (CompleteByDelete), so the jobs table cannot be
-- counted afterwards. The callback is enqueued only by the statement that
-- sets finished_at, under the row's lock and only while it is null, so two
-- members finishing at once, expiry racing the last member, or two
-- orchestrators expiring at once still enqueue one callback.
create table {{schema}}.batches (
  id bigint generated always as identity primary key,
  total integer not null constraint batches_total_valid check (total >= 1),
  succeeded integer not null default 0,
  failed integer not null default 0,
  cancelled integer not null default 0,
  -- Only Replay lowers a count (a failed member of an open batch put back);
  -- the outcome statements only add, and never check the sum: a refused
  -- count would hold back the member's own outcome.
  constraint batches_counts_valid check (succeeded >= 0 and failed >= 0 and cancelled >= 0),
  callback_task text not null
    constraint batches_callback_task_valid check (callback_task ~ '^[A-Za-z0-9_.:/-]{1,128}$'),
  callback_queue text not null default 'default'
    constraint batches_callback_queue_valid check (callback_queue ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  -- What the caller gave as onComplete.payload; the callback's payload wraps
  -- it with the batch's id and counts (batch_callback_payload).
  callback_payload jsonb not null default '{}'::jsonb,
  -- The callback job's id, drawn by the statement that finishes the batch.
  callback_job_id bigint,
  -- Finished by the expiry step, with the members still open then.
  expired boolean not null default false,
  open_job_ids bigint[],
  created_at timestamptz not null default {{schema}}.clock_now(),
  expires_at timestamptz,
  finished_at timestamptz,
  constraint batches_finished_has_callback check ((finished_at is null) = (callback_job_id is null))
);

-- The expiry step: open batches by expiry time.
create index batches_expiring on {{schema}}.batches (expires_at)
  where finished_at is null and expires_at is not null;
-- Listing, newest first, and pruning finished batches by age.
create index batches_finished on {{schema}}.batches (finished_at) where finished_at is not null;

-- (jobs_batch_open, a batch's open members, is built at the end of this
-- file, after the transaction.)

-- The callback's payload: the batch's id and counts, what the caller gave,
-- and for an expired batch the ids of the members still open then.
create function {{schema}}.batch_callback_payload(b {{schema}}.batches) returns jsonb
  language sql immutable
as $$
  select jsonb_build_object(
    'batch', b.id::text, 'succeeded', b.succeeded, 'failed', b.failed,
    'cancelled', b.cancelled, 'total', b.total, 'expired', b.expired,
    'payload', b.callback_payload)
  || case when b.expired
          then jsonb_build_object('open', coalesce(
                 (select jsonb_agg(o.id::text order by o.id) from unnest(b.open_job_ids) as o(id)),
                 '[]'::jsonb))
          else '{}'::jsonb end
$$;

-- Enqueues the callback jobs of batches just finished (rows as the statement
-- that finished them returned them: with callback_job_id drawn), and wakes
-- their queues at commit. Takes the rows instead of reading the table: the
-- caller's statement may not have finished writing them yet.
create function {{schema}}.enqueue_batch_callbacks(finished {{schema}}.batches[]) returns integer
  language plpgsql volatile
as $$
declare
  enqueued integer;
  clock timestamptz := {{schema}}.clock_now();
begin
  insert into {{schema}}.jobs (id, queue, task, payload, state, run_at, created_at)
  overriding system value
  select b.callback_job_id, b.callback_queue, b.callback_task,
         {{schema}}.batch_callback_payload(b), 'available', clock, clock
  from unnest(finished) as b;
  get diagnostics enqueued = row_count;
  perform {{schema}}.notify_jobs(array(select b.callback_queue from unnest(finished) as b));
  return enqueued;
end
$$;

-- Counts the outcomes of members that just finished, one per element:
-- member_batches[i] the member's batch, outcomes[i] 'succeeded', 'failed',
-- 'cancelled', or 'replayed' (a failed member put back in its queue: its
-- failure is taken back). Batches that reach their total are finished and
-- their callbacks enqueued, in the caller's transaction. Finished batches
-- are left alone: a member that ends after its batch expired counts for
-- nothing, and fires nothing. Returns the callbacks enqueued.
--
-- The outcome statements (jobs.sql) call it only when a row they wrote has
-- a batch: a job without one costs them an aggregate over their own rows.
create function {{schema}}.count_batch_outcomes(member_batches bigint[], outcomes text[])
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
           count(*) filter (where m.outcome = 'cancelled')::int as cancelled
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

-- rota:concurrently
-- A batch's open members (the ids an expired batch's callback lists, and
-- `batches get`). Partial: a job without a batch (nearly all) has no entry.
-- Built without holding the jobs table's writers (see migrate.ts).
drop index concurrently if exists {{schema}}.jobs_batch_open;
create index concurrently jobs_batch_open on {{schema}}.jobs (batch_id)
  where batch_id is not null and state in ('scheduled', 'available', 'running');
