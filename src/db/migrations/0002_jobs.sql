-- Jobs: one row per unit of work (see docs/job-states.md).
--
-- The table stays small: a job that succeeds is deleted at once (or kept for
-- the configured retention), and only queued rows are in the claim indexes.

create table {{schema}}.jobs (
  id bigint generated always as identity primary key,
  queue text not null default 'default'
    constraint jobs_queue_valid check (queue ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  task text not null
    constraint jobs_task_valid check (task ~ '^[A-Za-z0-9_.:/-]{1,128}$'),
  payload jsonb not null default '{}'::jsonb,
  -- scheduled: waits for run_at (delayed, or a planned schedule execution)
  -- available: may be claimed now; running: claimed, lease held
  -- succeeded / failed / cancelled: finished
  -- skipped / superseded / missed: a schedule execution that did not run
  state text not null default 'available'
    constraint jobs_state_valid check (state in (
      'scheduled', 'available', 'running', 'succeeded', 'failed', 'cancelled',
      'skipped', 'superseded', 'missed')),
  priority integer not null default 0,
  run_at timestamptz not null,
  attempts integer not null default 0
    constraint jobs_attempts_valid check (attempts >= 0),
  max_attempts integer not null default 25
    constraint jobs_max_attempts_valid check (max_attempts >= 1),
  -- How to wait between attempts: {"kind":"exponential","base_ms":..,"max_ms":..}
  -- or {"kind":"fixed","delay_ms":..}; a worker-side function may override.
  backoff jsonb,
  timeout_ms integer
    constraint jobs_timeout_valid check (timeout_ms is null or timeout_ms > 0),
  -- The lease: who runs it, until when (renewed by heartbeats). Completion is
  -- fenced on (id, attempts, lease_holder), so a rescued job's old worker
  -- cannot finish it.
  lease_holder text,
  lease_expires_at timestamptz,
  cancel_requested_at timestamptz,
  -- At most one queued job per unique key (see jobs_unique_key_queued).
  unique_key text,
  concurrency_key text,
  batch_id bigint,
  -- A schedule execution (filled by the scheduler).
  schedule_id bigint,
  target_key text,
  occurrence_at timestamptz,
  schedule_version text,
  deadline_at timestamptz,
  -- {"message","stack","attempt","at"} of the last failure.
  last_error jsonb,
  created_at timestamptz not null default {{schema}}.clock_now(),
  started_at timestamptz,
  finished_at timestamptz
);

-- The claim path reads two small indexes, each in its own order, so a claim
-- costs the same however many jobs wait in the future:
--   available rows, in claim order (highest priority, then oldest);
create index jobs_available on {{schema}}.jobs (queue, priority desc, run_at, id)
  where state = 'available';
--   scheduled rows, by due time (claimed once due, and the worker's "sleep
--   until the next one is due").
create index jobs_scheduled on {{schema}}.jobs (queue, run_at, id)
  where state = 'scheduled';

-- The rescuer: running rows by lease expiry.
create index jobs_running_lease on {{schema}}.jobs (lease_expires_at)
  where state = 'running';

-- The pruner: finished rows by age.
create index jobs_finished on {{schema}}.jobs (finished_at)
  where state in ('succeeded', 'failed', 'cancelled', 'skipped', 'superseded', 'missed');

create unique index jobs_unique_key_queued on {{schema}}.jobs (unique_key)
  where unique_key is not null and state in ('scheduled', 'available');

-- Wake-ups: one NOTIFY per enqueue statement, on commit. The payload names
-- the queue so workers of other queues stay asleep.
create function {{schema}}.notify_jobs(queues text[]) returns void
  language plpgsql volatile
as $$
begin
  perform pg_notify({{channel:jobs}}, q) from (select distinct unnest(queues) as q) as woken;
end
$$;
