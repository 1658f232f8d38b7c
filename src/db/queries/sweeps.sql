-- Every statement on {{schema}}.sweeps (migration 0013): limited-capacity sweeps.
-- A sweep's instances are jobs of task 'sweep:<name>' in its queue, under the
-- concurrency key 'sweep:<name>' limited to max_running; its cron's kick
-- executions are jobs of the same task with a schedule_id, and are not
-- instances.

-- name: Upsert
-- Registers sweep :name (or updates it), carrying a new queue or max_running
-- over to its queued instances (sweep_define, migration 0013).
select {{schema}}.sweep_define(:name, :queue, :maxRunning, :cron) as carried;

-- name: TopUp
-- Tops sweep :name up to its max_running instances (sweep_top_up); within an
-- instance's transaction :runningInstance is that instance, not counted.
-- added is null for an unknown sweep.
select {{schema}}.sweep_top_up(:name, :runningInstance::bigint) as added;

-- name: List
-- Every sweep (or only sweep :name) with its instances running and waiting
-- (queued), and whether its queue is paused (a paused queue's sweep waits).
select s.name, s.queue, s.max_running, s.cron, s.last_kicked_at,
       coalesce(q.paused, false) as paused,
       (select count(*) from {{schema}}.jobs as j
        where j.state = 'running' and j.concurrency_key = 'sweep:' || s.name
          and j.task = 'sweep:' || s.name and j.schedule_id is null)::int as running,
       (select count(*) from {{schema}}.jobs as j
        where j.state in ('available', 'scheduled') and hashtext(j.queue) = hashtext(s.queue)
          and j.queue = s.queue and j.task = 'sweep:' || s.name and j.schedule_id is null)::int
         as waiting
from {{schema}}.sweeps as s
left join {{schema}}.queues as q on q.name = s.queue
where :name::text is null or s.name = :name
order by s.name;
