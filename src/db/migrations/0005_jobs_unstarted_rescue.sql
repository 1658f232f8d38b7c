-- A worker claims more jobs than it runs at once (its buffer). If it dies,
-- the buffered jobs never started, yet their attempt was counted at claim:
-- one on its last attempt would end 'failed' without having run. A job's
-- started_at is now set when its handler starts (at claim for the jobs that
-- start at once, by the worker for buffered ones), and rescue gives a job
-- that never started its attempt back, once: unstarted_rescues bounds it, so
-- a job that kills its worker before its start is recorded cannot come back
-- forever.
alter table {{schema}}.jobs
  add column unstarted_rescues smallint not null default 0;
