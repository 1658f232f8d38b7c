-- A horizon in time as well as in count. A schedule keeps planned at least
-- `horizon` executions and at least horizon_ms ahead of now, so a leader that
-- dies delays nothing already planned: a standby takes over within the lease
-- TTL plus a tick (15 s and 1 s by default), inside the default 60 s. A count
-- alone planned a per-second schedule 3 s ahead, and its executions started
-- up to 12 s late after a kill -9 of the leader. The planner caps what the
-- time adds at 300 executions per schedule (TIME_HORIZON_CAP in plan.ts), so a
-- per-second schedule plans minutes ahead, not hours. Like `horizon`, it is
-- not part of the version: changing it re-plans nothing, the next pass fills.
alter table {{schema}}.schedules
  add column horizon_ms integer not null default 60000
    constraint schedules_horizon_ms_valid check (horizon_ms between 0 and 86400000);
