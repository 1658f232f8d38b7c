-- Whether a job with this unique key waits in the queue ('scheduled' or
-- 'available'), as the jobs_unique_key_queued index answers it. A job going
-- back to the queue (a retry, a rescue, a graceful stop's hand-back) while
-- another with its key waits there gives its key up; a failed job is not
-- replayed then. One definition for the four statements that ask (Fail,
-- Rescue, ReleaseUnstarted, Replay); a plain SQL function the planner inlines.
create function {{schema}}.unique_key_queued(key text) returns boolean
  language sql stable
as $$
  select exists (
    select 1 from {{schema}}.jobs
    where unique_key = key and state in ('scheduled', 'available')
  )
$$;
