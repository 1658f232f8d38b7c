-- Built CONCURRENTLY, outside a transaction (see migrate.ts): on a jobs
-- table of millions of rows a plain CREATE INDEX holds every insert and
-- update (enqueues, claims, outcomes) for the whole build; this one lets
-- them run. Each statement is
-- safe to run again: a build that failed half-way leaves an invalid index,
-- which the drop removes before the next try (and a database that got the
-- index from an earlier form of 0018 rebuilds it once).
--
-- rota.findJobs (jobs.sql Find) pages by id, newest first, walking the
-- primary key backwards from its cursor and filtering as it goes: a page
-- costs the rows read until it fills. That is cheap for a common state and
-- for the states that have a partial index already (available, scheduled:
-- the claim indexes; running: jobs_running_lease), but a state with few rows
-- is read through the whole table: on 1,000,000 jobs (bench/jobs-page.ts),
-- 'missed' (182 rows) took 67 ms a page and 'superseded' (none) 128 ms, and
-- 'failed' would too in a healthy system, where the dashboard's failed
-- page is the one looked at; the failed jobs of one queue (0.02%) took
-- 134 ms. This index holds only the jobs that ended other than succeeded,
-- by state, queue and id: a page of one state in one queue reads its own
-- rows in order, and a page of a rare state its few rows, sorted. A job
-- pays for it once, when it fails for good, is cancelled, skipped,
-- superseded or missed; enqueue, retry and success add no entry, and a claim
-- only evaluates the predicate (about 2% of it; BENCHMARKS.md).
-- rota:concurrently
drop index concurrently if exists {{schema}}.jobs_ended_by_state;
create index concurrently jobs_ended_by_state on {{schema}}.jobs (state, queue, id)
  where state in ('failed', 'cancelled', 'skipped', 'superseded', 'missed');
