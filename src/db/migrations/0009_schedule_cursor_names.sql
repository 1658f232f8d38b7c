-- The schedule columns are named for what they hold. next_run_at was the
-- planning cursor (the first occurrence not materialized yet; NULL = take a
-- baseline), not the next run: the next run is the earliest planned
-- execution. last_run_at was the last occurrence planned, not the last one
-- run. Both are renamed; the next planned run and the last run are read
-- from the executions themselves (schedule_times).
--
-- Breaking for running orchestrators: one older than this reads the old
-- names. Stop them before migrating (README, "Upgrading"); workers read no
-- schedule column and keep running. Processes check the schema version
-- when they start, and an older rota refuses a newer schema.
alter table {{schema}}.schedules rename column next_run_at to cursor_at;
alter table {{schema}}.schedules rename column last_run_at to last_planned_at;

-- When a schedule runs next and when it last ran, from its executions
-- through jobs_schedule (schedule, run time): the next planned run is the
-- earliest execution still 'scheduled'; the last run is the start of the
-- latest execution that started, found walking back from the latest run
-- time (past the few planned ones that have not). One definition for the
-- statements that report a schedule (GetByName, Lock, List).
create function {{schema}}.schedule_times(schedule bigint,
                                            out next_planned_at timestamptz,
                                            out last_run_at timestamptz)
  language sql stable
as $$
  select (select min(j.run_at) from {{schema}}.jobs as j
          where j.schedule_id = schedule and j.state = 'scheduled'),
         (select j.started_at from {{schema}}.jobs as j
          where j.schedule_id = schedule and j.started_at is not null
          order by j.run_at desc limit 1)
$$;
