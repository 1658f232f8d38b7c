-- The queue and task name checks move out of the table.
--
-- A regular-expression CHECK runs for every inserted row and was more than
-- half the cost of a bulk enqueue. Names are checked where they enter rota
-- instead: the TypeScript API (queue/job-options.ts) and, for jobs enqueued
-- from SQL, rota's enqueue function. The table keeps a cheap length bound so
-- a hand-written INSERT still cannot store an empty or oversized name.
-- Added NOT VALID and validated after the transaction: validating reads the
-- whole table, which under the ALTER's lock would hold its writers (see
-- migrate.ts). New rows are checked at once either way.
alter table {{schema}}.jobs
  drop constraint jobs_queue_valid,
  drop constraint jobs_task_valid,
  add constraint jobs_queue_length check (octet_length(queue) between 1 and 128) not valid,
  add constraint jobs_task_length check (octet_length(task) between 1 and 128) not valid;

-- rota:concurrently
alter table {{schema}}.jobs validate constraint jobs_queue_length;
alter table {{schema}}.jobs validate constraint jobs_task_length;
