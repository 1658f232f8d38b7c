-- Sweeps (limited-capacity work, docs/capacity.md): what `rota.sweeps.define`
-- registered, so `rota sweeps list|run` knows a sweep without its code. Its
-- instances are ordinary jobs: task 'sweep:<name>', in its queue, under the
-- concurrency key 'sweep:<name>' limited to max_running.
create table {{schema}}.sweeps (
  name text primary key
    constraint sweeps_name_valid check (name ~ '^[A-Za-z0-9_.:-]{1,100}$'),
  queue text not null
    constraint sweeps_queue_valid check (queue ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  max_running integer not null constraint sweeps_max_running_valid check (max_running >= 1),
  cron text,
  last_kicked_at timestamptz,
  created_at timestamptz not null default {{schema}}.clock_now(),
  updated_at timestamptz not null default {{schema}}.clock_now()
);

-- Tops sweep `sweep_name` up to max_running instances: counts those queued or
-- running (not `running_instance`, the instance calling, which is about to
-- end, nor the cron's kick executions) and enqueues the difference, waking
-- the queue. Returns how many it enqueued; null for an unknown sweep.
-- Under the sweep's advisory lock, so two top-ups at once (a kick and an
-- instance, two instances) never both fill the same gap; a VOLATILE function,
-- so the count, made after the lock is held, sees what the previous holder
-- committed (see queue_room, migration 0012).
create function {{schema}}.sweep_top_up(sweep_name text, running_instance bigint default null)
  returns integer
  language plpgsql volatile
as $$
declare
  sweep {{schema}}.sweeps%rowtype;
  task_name text;
  existing integer;
  added integer;
begin
  perform pg_advisory_xact_lock(hashtext('{{schema}}.sweeps'), hashtext(sweep_name));
  select * into sweep from {{schema}}.sweeps as s where s.name = sweep_name;
  if not found then return null; end if;
  task_name := 'sweep:' || sweep.name;
  -- One count per state, each through its index (migrations 0006, 0012).
  select (select count(*) from {{schema}}.jobs as j
          where j.state = 'running' and j.concurrency_key = task_name
            and j.task = task_name and j.schedule_id is null
            and j.id is distinct from running_instance)
       + (select count(*) from {{schema}}.jobs as j
          where j.state = 'available' and hashtext(j.queue) = hashtext(sweep.queue)
            and j.queue = sweep.queue and j.task = task_name and j.schedule_id is null)
       + (select count(*) from {{schema}}.jobs as j
          where j.state = 'scheduled' and hashtext(j.queue) = hashtext(sweep.queue)
            and j.queue = sweep.queue and j.task = task_name and j.schedule_id is null)
    into existing;
  added := greatest(0, sweep.max_running - existing);
  insert into {{schema}}.jobs (queue, task, payload, state, run_at, max_attempts,
                               concurrency_key, concurrency_limit, created_at)
  select sweep.queue, task_name, '{}'::jsonb, 'available', {{schema}}.clock_now(), 5,
         task_name, sweep.max_running, {{schema}}.clock_now()
  from generate_series(1, added);
  update {{schema}}.sweeps set last_kicked_at = {{schema}}.clock_now() where name = sweep.name;
  if added > 0 then perform {{schema}}.notify_jobs(array[sweep.queue]); end if;
  return added;
end
$$;

-- Records sweep `sweep_name` (or updates it), and carries a new queue or
-- max_running over to its instances still queued; returns how many it
-- carried. Under the sweep's lock, with a fresh snapshot after it (as
-- sweep_top_up), so instances a top-up was inserting meanwhile are carried
-- too. (Running ones finish as they are; a retry of one stays in the old
-- queue.)
create function {{schema}}.sweep_define(sweep_name text, sweep_queue text, sweep_max_running integer,
                                        sweep_cron text)
  returns integer
  language plpgsql volatile
as $$
declare
  previous_queue text;
  carried integer;
begin
  perform pg_advisory_xact_lock(hashtext('{{schema}}.sweeps'), hashtext(sweep_name));
  select s.queue into previous_queue from {{schema}}.sweeps as s where s.name = sweep_name;
  insert into {{schema}}.sweeps as s (name, queue, max_running, cron)
  values (sweep_name, sweep_queue, sweep_max_running, sweep_cron)
  on conflict (name) do update
    set queue = excluded.queue, max_running = excluded.max_running, cron = excluded.cron,
        updated_at = {{schema}}.clock_now();
  if previous_queue is null then return 0; end if;
  update {{schema}}.jobs as j
  set queue = sweep_queue, concurrency_limit = sweep_max_running
  where j.state in ('available', 'scheduled') and hashtext(j.queue) = hashtext(previous_queue)
    and j.queue = previous_queue and j.task = 'sweep:' || sweep_name and j.schedule_id is null;
  get diagnostics carried = row_count;
  if carried > 0 then perform {{schema}}.notify_jobs(array[sweep_queue]); end if;
  return carried;
end
$$;
