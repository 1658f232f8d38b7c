-- rota's clock seam (DESIGN.md guarantee 4: the database clock decides).
--
-- Every "is it due?" comparison in rota's SQL calls {{schema}}.clock_now()
-- instead of now(). In production it IS now(). Two ways to move it, both
-- without touching any process clock:
--   * a per-schema offset in {{schema}}.clock, seen by every connection
--     (tests shift a whole schema forward; `rota simulate` drives a schedule
--     through days in seconds);
--   * the session/transaction setting rota.now = '<timestamptz>', which pins
--     the time for that connection only.

create table {{schema}}.clock (
  singleton boolean primary key default true constraint clock_singleton check (singleton),
  offset_by interval not null default interval '0'
);

insert into {{schema}}.clock (singleton) values (true);

-- STABLE: one value per statement, like now(). Call it as (select clock_now())
-- in a WHERE clause so it is evaluated once, not per row.
create function {{schema}}.clock_now() returns timestamptz
  language sql stable parallel safe
as $$
  select coalesce(
    nullif(current_setting('rota.now', true), '')::timestamptz,
    now() + (select offset_by from {{schema}}.clock)
  )
$$;
