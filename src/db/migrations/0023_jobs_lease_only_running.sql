-- A lease holder is set only while a job runs: every statement that takes
-- a job out of 'running' clears it (or deletes the row). The outcome
-- statements (jobs.sql: CompleteBy*, Fail, Heartbeat, ExtendLease,
-- MarkStarted, ReleaseUnstarted) fence on the lease holder alone and leave the state
-- out, so that PostgreSQL finds their jobs through the primary key: named,
-- the state let the planner read jobs_running_lease instead, whose row
-- estimate is only as fresh as the last ANALYZE. Taken while no job ran, it
-- says one row, and a batch of 200 outcomes then compared every running
-- job with every outcome: 55 microseconds an outcome with 250 jobs held,
-- growing with the jobs all workers hold (BENCHMARKS.md, "Outcomes found
-- by primary key"). This check makes the fence mean what it did.
-- Added NOT VALID and validated after the transaction (see 0003).
alter table {{schema}}.jobs
  add constraint jobs_lease_only_running check (lease_holder is null or state = 'running') not valid;

-- rota:concurrently
alter table {{schema}}.jobs validate constraint jobs_lease_only_running;
