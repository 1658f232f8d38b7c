-- The clock seam (see migrations/0001_clock.sql).

-- name: Now
select {{schema}}.clock_now() as now;

-- name: ShiftBy
-- clock_now() is STABLE, so it would not see this row change in the same
-- statement: callers read the new time with Now afterwards.
-- :ms: milliseconds to add to the schema's clock offset (negative moves it back).
-- Workers sleeping until a due time are woken ("*": every queue) to look again.
with shifted as (
  update {{schema}}.clock
  set offset_by = offset_by + make_interval(secs => :ms::double precision / 1000)
  returning 1
)
select pg_notify({{channel:jobs}}, '*') from shifted;

-- name: Reset
update {{schema}}.clock set offset_by = interval '0';
