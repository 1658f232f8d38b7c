-- The schedule columns are named for what they hold. next_run_at was the
-- planning cursor (the first occurrence not materialized yet; NULL = take a
-- baseline), not the next run: the next run is the earliest planned
-- execution. last_run_at was the last occurrence planned, not the last one
-- run. Both are renamed; the last execution that started and the next
-- planned one are read from the executions themselves (schedules.sql).
--
-- Breaking for running processes: a rota older than this statement refers to
-- the old names. Processes check the schema version when they start and an
-- older rota refuses a newer schema, so stop the old processes, migrate, and
-- start the new ones.
alter table {{schema}}.schedules rename column next_run_at to cursor_at;
alter table {{schema}}.schedules rename column last_run_at to last_planned_at;
