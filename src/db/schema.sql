-- rota's schema after migration 0023_jobs_lease_only_running, as pg_dump --schema-only prints it
-- (PostgreSQL 15) for a schema named "rota". Written by `npm run schema:snapshot`;
-- CI (`npm run schema:check`) fails when the migrations no longer build exactly this.
-- Do not edit by hand: change the schema with a new migration in src/db/migrations/.

-- SCHEMA: rota

CREATE SCHEMA rota;

-- FUNCTION: append_error(jsonb, jsonb)

CREATE FUNCTION rota.append_error(history jsonb, error jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  select case when jsonb_array_length(coalesce(history, '[]')) >= 20
              then (coalesce(history, '[]') - 0) || jsonb_build_array(error)
              else coalesce(history, '[]') || jsonb_build_array(error) end
$$;

-- FUNCTION: clock_now()

CREATE FUNCTION rota.clock_now() RETURNS timestamp with time zone
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
  select coalesce(
    nullif(current_setting('rota.now', true), '')::timestamptz,
    now() + (select offset_by from "rota".clock)
  )
$$;

-- TABLE: batches

CREATE TABLE rota.batches (
    id bigint NOT NULL,
    total integer NOT NULL,
    succeeded integer DEFAULT 0 NOT NULL,
    failed integer DEFAULT 0 NOT NULL,
    cancelled integer DEFAULT 0 NOT NULL,
    callback_task text NOT NULL,
    callback_queue text DEFAULT 'default'::text NOT NULL,
    callback_payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    callback_job_id bigint,
    expired boolean DEFAULT false NOT NULL,
    open_job_ids bigint[],
    created_at timestamp with time zone DEFAULT rota.clock_now() NOT NULL,
    expires_at timestamp with time zone,
    finished_at timestamp with time zone,
    CONSTRAINT batches_callback_queue_valid CHECK ((callback_queue ~ '^[A-Za-z0-9_.:-]{1,128}$'::text)),
    CONSTRAINT batches_callback_task_valid CHECK ((callback_task ~ '^[A-Za-z0-9_.:/-]{1,128}$'::text)),
    CONSTRAINT batches_counts_valid CHECK (((succeeded >= 0) AND (failed >= 0) AND (cancelled >= 0))),
    CONSTRAINT batches_finished_has_callback CHECK (((finished_at IS NULL) = (callback_job_id IS NULL))),
    CONSTRAINT batches_total_valid CHECK ((total >= 1))
);

-- FUNCTION: batch_callback_payload(rota.batches)

CREATE FUNCTION rota.batch_callback_payload(b rota.batches) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$
  select jsonb_build_object(
    'batch', b.id::text, 'succeeded', b.succeeded, 'failed', b.failed,
    'cancelled', b.cancelled, 'total', b.total, 'expired', b.expired,
    'payload', b.callback_payload)
  || case when b.expired
          then jsonb_build_object('open', coalesce(
                 (select jsonb_agg(o.id::text order by o.id) from unnest(b.open_job_ids) as o(id)),
                 '[]'::jsonb))
          else '{}'::jsonb end
$$;

-- FUNCTION: count_batch_outcomes(bigint[], text[])

CREATE FUNCTION rota.count_batch_outcomes(member_batches bigint[], outcomes text[]) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  finished "rota".batches[];
  clock timestamptz := "rota".clock_now();
begin
  -- The rows are locked in id order first: two transactions counting members
  -- of the same batches take them in one order and never deadlock. A
  -- VOLATILE function, so the update below, a statement of its own, reads
  -- the counts the previous holder of a lock committed.
  perform 1 from "rota".batches
  where id = any(member_batches) and finished_at is null
  order by id
  for no key update;
  with tally as (
    select m.batch_id,
           count(*) filter (where m.outcome = 'succeeded')::int as succeeded,
           (count(*) filter (where m.outcome = 'failed')
             - count(*) filter (where m.outcome = 'replayed'))::int as failed,
           (count(*) filter (where m.outcome = 'cancelled')
             - count(*) filter (where m.outcome = 'replayed_cancelled'))::int as cancelled
    from unnest(member_batches, outcomes) as m(batch_id, outcome)
    where m.batch_id is not null
    group by m.batch_id
  ),
  counted as (
    update "rota".batches as b
    set succeeded = b.succeeded + t.succeeded,
        failed = b.failed + t.failed,
        cancelled = b.cancelled + t.cancelled,
        finished_at = case when b.succeeded + t.succeeded + b.failed + t.failed
                                + b.cancelled + t.cancelled >= b.total then clock end,
        callback_job_id = case when b.succeeded + t.succeeded + b.failed + t.failed
                                    + b.cancelled + t.cancelled >= b.total
                               then nextval('"rota".jobs_id_seq'::regclass) end
    from tally as t
    where b.id = t.batch_id and b.finished_at is null
    returning b
  )
  select array_agg(c.b) into finished from counted as c where (c.b).finished_at is not null;
  if finished is null then return 0; end if;
  return "rota".enqueue_batch_callbacks(finished);
end
$$;

-- FUNCTION: enqueue(text, jsonb, jsonb)

CREATE FUNCTION rota.enqueue(task text, payload jsonb DEFAULT '{}'::jsonb, options jsonb DEFAULT '{}'::jsonb) RETURNS bigint
    LANGUAGE plpgsql
    AS $_$
declare
  -- queue/job-options.ts: ENQUEUE_OPTION_KEYS that SQL takes, in its spelling.
  known constant text[] := array['queue', 'run_at', 'delay_ms', 'priority', 'max_attempts',
                                 'unique_key', 'on_conflict'];
  -- DEFAULT_PAYLOAD_LIMIT_BYTES: a process's payloadLimitBytes is not known here.
  payload_limit constant bigint := 1024 * 1024;
  int32_max constant numeric := 2147483647;
  -- A JavaScript Date's range from the epoch: any delay up to it keeps the run
  -- time a valid timestamptz.
  delay_max constant numeric := 8640000000000000;
  -- ISO 8601 with its offset: year, month, day, hour, minute (seconds and a
  -- fraction optional), then Z or +hh[:mm[:ss]] (to_jsonb(timestamptz) writes
  -- seconds for old local mean times). A time without an offset would be read
  -- in the session's TimeZone, which differs between a psql session and the
  -- application connection that fires a trigger: refused, as a JavaScript Date
  -- is always an instant.
  iso_time constant text := '^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]'
                            '(:[0-5][0-9](\.[0-9]{1,9})?)?'
                            '([Zz]|[+-](0[0-9]|1[0-5])(:?[0-5][0-9](:[0-5][0-9])?)?)$';
  bytes bigint;
  unknown_key text;
  advice text;
  -- One option at a time: its JSON value, and its number when it is one.
  value jsonb;
  num numeric;
  parts text[];
  -- The job, with rota's defaults.
  job_queue text := 'default';
  run_time timestamptz;
  delay numeric;
  job_priority integer := 0;
  job_max_attempts integer := 25;
  job_key text;
  conflict text := 'keep';
  clock timestamptz;
  due timestamptz;
  initial_state text;
  job_id bigint;
begin
  -- validateTaskName
  if task is null or task !~ '^[A-Za-z0-9_.:/-]{1,128}$' then
    raise exception using errcode = '22023',
      message = format('Invalid task name %s: use 1-128 characters of letters, digits, "_", ".", ":", "/" or "-". [INVALID_TASK_NAME]',
                       coalesce(to_jsonb(task)::text, 'null')),
      hint = 'Name the task as the worker that runs it registers it, such as ''email.receipt''.';
  end if;

  -- serializePayload (jsonb holds no NUL or lone surrogate: those need no check)
  if payload is null then
    raise exception using errcode = '22023',
      message = format('Payload for task "%s" is SQL NULL. [INVALID_PAYLOAD]', task),
      hint = 'Leave the payload out or pass ''{}''::jsonb for an empty one (''null''::jsonb is the JSON null); coalesce() a value that may be NULL.';
  end if;
  bytes := octet_length(payload::text);
  -- jsonb's text is never shorter than JSON.stringify's: only a longer one is measured exactly.
  if bytes > payload_limit then
    bytes := "rota".json_text_bytes(payload);
  end if;
  if bytes > payload_limit then
    raise exception using errcode = '22023',
      message = format('Payload for task "%s" is %s bytes, over the %s-byte limit: store large data elsewhere and enqueue a reference. [PAYLOAD_TOO_LARGE]',
                       task, bytes, payload_limit),
      hint = 'The limit is rota''s default payloadLimitBytes, counted on the payload''s JSON text without spaces; a process''s own setting does not reach the database.';
  end if;

  -- normalizeJob
  if options is null or jsonb_typeof(options) <> 'object' then
    raise exception using errcode = '22023',
      message = format('Enqueue options must be an object, got %s. [INVALID_OPTION]',
                       coalesce(options::text, 'SQL NULL')),
      hint = 'Leave the options out, or pass a jsonb object such as ''{"queue": "mail"}''::jsonb.';
  end if;

  -- rejectUnknownKeys, with advice for the TypeScript spellings
  select k into unknown_key from jsonb_object_keys(options) as k where k <> all (known) limit 1;
  if found then
    advice := case
      when unknown_key in ('runAt', 'delayMs', 'maxAttempts', 'uniqueKey', 'onConflict') then
        format('use "%s" (SQL takes the options'' snake_case names)',
               lower(regexp_replace(unknown_key, '([A-Z])', '_\1', 'g')))
      when unknown_key in ('backoff', 'timeoutMs', 'timeout_ms', 'concurrencyKey', 'concurrency_key',
                           'concurrencyLimit', 'concurrency_limit', 'client') then
        format('the SQL function does not take this TypeScript option; use %s', array_to_string(known, ', '))
      else (select format('did you mean "%s"?', near) from unnest(known) with ordinality as n(near, i)
            where starts_with(lower(near), lower(left(unknown_key, 4))) order by i limit 1)
    end;
    raise exception using errcode = '22023',
      message = format('Enqueue options: unknown "%s"; %s [INVALID_OPTION]',
                       unknown_key, coalesce(advice, 'use ' || array_to_string(known, ', ')));
  end if;

  -- validateQueueName. A key given as JSON null means the default, as an
  -- undefined option does in TypeScript (options.queue ?? ...).
  value := options -> 'queue';
  if value is not null and value <> 'null' then
    if jsonb_typeof(value) <> 'string' or (value #>> '{}') !~ '^[A-Za-z0-9_.:-]{1,128}$' then
      raise exception using errcode = '22023',
        message = format('Invalid queue %s: use 1-128 characters of letters, digits, "_", ".", ":" or "-". [INVALID_QUEUE_NAME]',
                         value::text);
    end if;
    job_queue := value #>> '{}';
  end if;

  -- The run time: there, JSON null is refused, as runAt: null is.
  if options ? 'run_at' and options ? 'delay_ms' then
    raise exception using errcode = '22023',
      message = 'Give run_at or delay_ms, not both. [INVALID_RUN_AT]';
  end if;
  if options ? 'run_at' then
    value := options -> 'run_at';
    parts := case when jsonb_typeof(value) = 'string' then regexp_match(value #>> '{}', iso_time) end;
    -- A date that does not exist (Feb 30) passes the pattern, and the cast
    -- would refuse it with PostgreSQL's error instead of rota's. (Checks in
    -- nested IFs: SQL does not promise to evaluate AND from left to right.)
    if parts is not null and parts[1]::int >= 1 and parts[2]::int between 1 and 12 then
      if parts[3]::int between 1 and
         extract(day from make_date(parts[1]::int, parts[2]::int, 1) + interval '1 month - 1 day') then
        run_time := (value #>> '{}')::timestamptz;
      end if;
    end if;
    if run_time is null then
      raise exception using errcode = '22023',
        message = format('run_at must be an ISO 8601 time with its offset, such as "2026-05-01T09:00:00Z", got %s. [INVALID_RUN_AT]',
                         value::text),
        hint = 'to_jsonb() of a timestamptz writes one; for a time from now, give delay_ms instead (it counts from rota''s clock).';
    end if;
  end if;
  if options ? 'delay_ms' then
    value := options -> 'delay_ms';
    num := case when jsonb_typeof(value) = 'number' then (value #>> '{}')::numeric end;
    if num is null or num < 0 then
      raise exception using errcode = '22023',
        message = format('delay_ms must be a number of milliseconds >= 0, got %s. [INVALID_RUN_AT]', value::text);
    end if;
    if num > delay_max then
      raise exception using errcode = '22023',
        message = format('delay_ms must be at most %s (the range of a JavaScript Date), got %s. [INVALID_RUN_AT]',
                         delay_max, num::float8);
    end if;
    delay := num;
  end if;

  value := options -> 'priority';
  if value is not null and value <> 'null' then
    num := case when jsonb_typeof(value) = 'number' then (value #>> '{}')::numeric end;
    if num is null or num <> trunc(num) or abs(num) > int32_max then
      raise exception using errcode = '22023',
        message = format('priority must be a whole number, got %s. [INVALID_PRIORITY]', value::text),
        hint = 'From -2147483647 to 2147483647; higher runs first.';
    end if;
    job_priority := num;
  end if;

  value := options -> 'max_attempts';
  if value is not null and value <> 'null' then
    num := case when jsonb_typeof(value) = 'number' then (value #>> '{}')::numeric end;
    if num is null or num <> trunc(num) or num < 1 or num > int32_max then
      raise exception using errcode = '22023',
        message = format('max_attempts must be a whole number of at least 1, got %s. [INVALID_MAX_ATTEMPTS]', value::text),
        hint = 'At most 2147483647.';
    end if;
    job_max_attempts := num;
  end if;

  value := options -> 'unique_key';
  if value is not null and value <> 'null' then
    job_key := case when jsonb_typeof(value) = 'string' then value #>> '{}' end;
    -- 512 UTF-16 code units, as JavaScript counts a string's length: a
    -- character outside the Basic Multilingual Plane counts twice. Never more
    -- than the UTF-8 bytes, so only a longer key is counted.
    if job_key is null or job_key = ''
       or (octet_length(job_key) > 512
           and char_length(job_key)
               + char_length(regexp_replace(job_key, '[^\U00010000-\U0010FFFF]', '', 'g')) > 512) then
      raise exception using errcode = '22023',
        message = format('unique_key must be a non-empty string of at most 512 characters, got %s. [INVALID_OPTION]',
                         case when jsonb_typeof(value) = 'string' and octet_length(job_key) > 512
                              then format('%s characters', char_length(job_key)) else value::text end);
    end if;
  end if;

  value := options -> 'on_conflict';
  if value is not null and value <> 'null' then
    if value not in ('"keep"', '"replace"') then
      raise exception using errcode = '22023',
        message = format('on_conflict must be "keep" or "replace", got %s. [INVALID_OPTION]', value::text);
    end if;
    conflict := value #>> '{}';
  end if;

  -- The row enqueue.sql's Insert writes: the clock read once, due later is 'scheduled'.
  clock := "rota".clock_now();
  due := coalesce(run_time, clock + make_interval(secs => coalesce(delay, 0)::float8 / 1000.0));
  initial_state := case when due > clock then 'scheduled' else 'available' end;

  if job_key is null then
    insert into "rota".jobs (queue, task, payload, state, priority, run_at, max_attempts, created_at)
    values (job_queue, enqueue.task, enqueue.payload, initial_state, job_priority, due,
            job_max_attempts, clock)
    returning id into job_id;
  elsif conflict = 'replace' then
    -- What Insert's 'replace' overwrites (enqueue.sql), column for column.
    insert into "rota".jobs as j (queue, task, payload, state, priority, run_at, max_attempts,
                                      unique_key, created_at)
    values (job_queue, enqueue.task, enqueue.payload, initial_state, job_priority, due,
            job_max_attempts, job_key, clock)
    on conflict (unique_key) where unique_key is not null and state in ('scheduled', 'available')
    do update set payload = excluded.payload, run_at = excluded.run_at, state = excluded.state,
                  priority = excluded.priority, max_attempts = excluded.max_attempts,
                  backoff = excluded.backoff, timeout_ms = excluded.timeout_ms,
                  concurrency_key = excluded.concurrency_key,
                  concurrency_limit = excluded.concurrency_limit,
                  queue = excluded.queue, task = excluded.task
    returning j.id into job_id;
  else
    loop
      insert into "rota".jobs as j (queue, task, payload, state, priority, run_at, max_attempts,
                                        unique_key, created_at)
      values (job_queue, enqueue.task, enqueue.payload, initial_state, job_priority, due,
              job_max_attempts, job_key, clock)
      on conflict (unique_key) where unique_key is not null and state in ('scheduled', 'available')
      do nothing
      returning j.id into job_id;
      exit when found;
      -- Kept: nothing written, nobody to wake.
      select j.id into job_id from "rota".jobs as j
      where j.unique_key = job_key and j.state in ('scheduled', 'available');
      if found then
        return job_id;
      end if;
    end loop;
  end if;

  perform "rota".notify_jobs(array[job_queue]);
  return job_id;
end
$_$;

-- FUNCTION: enqueue_batch_callbacks(rota.batches[])

CREATE FUNCTION rota.enqueue_batch_callbacks(finished rota.batches[]) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  enqueued integer;
  clock timestamptz := "rota".clock_now();
begin
  insert into "rota".jobs (id, queue, task, payload, state, run_at, created_at)
  overriding system value
  select b.callback_job_id, b.callback_queue, b.callback_task,
         "rota".batch_callback_payload(b), 'available', clock, clock
  from unnest(finished) as b;
  get diagnostics enqueued = row_count;
  perform "rota".notify_jobs(array(select b.callback_queue from unnest(finished) as b));
  return enqueued;
end
$$;

-- FUNCTION: json_text_bytes(jsonb)

CREATE FUNCTION rota.json_text_bytes(doc jsonb) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
  with recursive container(value) as (
    select doc where jsonb_typeof(doc) in ('object', 'array')
    union all
    select child.value
    from container
    cross join lateral (
      select e.value from jsonb_each(case when jsonb_typeof(container.value) = 'object'
                                          then container.value end) as e
      union all
      select a.value from jsonb_array_elements(case when jsonb_typeof(container.value) = 'array'
                                                    then container.value end) as a
    ) as child
    where jsonb_typeof(child.value) in ('object', 'array')
  ),
  sized as (
    select jsonb_typeof(value) as kind,
           case when jsonb_typeof(value) = 'array' then jsonb_array_length(value)
                else (select count(*) from jsonb_object_keys(value)) end as members
    from container
  )
  -- n members: n - 1 spaces after commas, and n after colons in an object.
  select octet_length(doc::text)
         - coalesce(sum(greatest(members - 1, 0) + case when kind = 'object' then members else 0 end), 0)
  from sized
$$;

-- FUNCTION: key_full(text, integer)

CREATE FUNCTION rota.key_full(key text, cap integer) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  select count(*) >= cap from (
    select 1 from "rota".jobs as j
    where j.concurrency_key = key and j.state = 'running'
    limit cap
  ) as running
$$;

-- FUNCTION: key_running(text)

CREATE FUNCTION rota.key_running(key text) RETURNS integer
    LANGUAGE plpgsql
    AS $$
begin
  perform pg_advisory_xact_lock(hashtext('"rota".concurrency_key'), hashtext(key));
  return (select count(*) from "rota".jobs as j
          where j.concurrency_key = key and j.state = 'running');
end
$$;

-- FUNCTION: notify_due(text[], double precision[])

CREATE FUNCTION rota.notify_due(queues text[], due_in_ms double precision[]) RETURNS void
    LANGUAGE plpgsql
    AS $$
begin
  perform pg_notify('rota_jobs_rota',
                    case when coalesce(min(w.due_in_ms), 0) <= 0 then w.queue
                         else w.queue || ' +' || ceil(min(w.due_in_ms))::bigint end)
  from unnest(queues, due_in_ms) as w(queue, due_in_ms)
  group by w.queue;
end
$$;

-- FUNCTION: notify_jobs(text[])

CREATE FUNCTION rota.notify_jobs(queues text[]) RETURNS void
    LANGUAGE plpgsql
    AS $$
begin
  perform pg_notify('rota_jobs_rota', q) from (select distinct unnest(queues) as q) as woken;
end
$$;

-- FUNCTION: queue_full(text)

CREATE FUNCTION rota.queue_full(queue text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  select exists (
    select 1 from "rota".queues as p
    where p.name = queue and p.concurrency_limit is not null
      and p.concurrency_limit <= (select count(*) from "rota".jobs as j
                                  where j.queue = p.name and j.state = 'running'))
$$;

-- FUNCTION: queue_paused(text)

CREATE FUNCTION rota.queue_paused(queue text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  select exists (select 1 from "rota".queues as p where p.name = queue and p.paused)
$$;

-- FUNCTION: queue_room(text)

CREATE FUNCTION rota.queue_room(queue text, OUT room integer, OUT limit_reached boolean) RETURNS record
    LANGUAGE plpgsql
    AS $$
declare
  settings record;
begin
  limit_reached := false;
  select q.paused, q.concurrency_limit into settings from "rota".queues as q where q.name = queue_room.queue;
  if not found or not (settings.paused or settings.concurrency_limit is not null) then return; end if;
  if settings.concurrency_limit is not null then
    select q.paused, q.concurrency_limit into settings
    from "rota".queues as q where q.name = queue_room.queue for no key update;
  end if;
  if settings.paused then room := 0; return; end if;
  if settings.concurrency_limit is null then return; end if;
  room := greatest(0, settings.concurrency_limit - (
    select count(*) from "rota".jobs as j where j.queue = queue_room.queue and j.state = 'running'));
  limit_reached := room = 0;
end
$$;

-- FUNCTION: schedule_times(bigint)

CREATE FUNCTION rota.schedule_times(schedule bigint, OUT next_planned_at timestamp with time zone, OUT last_run_at timestamp with time zone) RETURNS record
    LANGUAGE sql STABLE
    AS $$
  select (select min(j.run_at) from "rota".jobs as j
          where j.schedule_id = schedule and j.state = 'scheduled'),
         (select j.started_at from "rota".jobs as j
          where j.schedule_id = schedule and j.started_at is not null
          order by j.run_at desc limit 1)
$$;

-- FUNCTION: sweep_define(text, text, integer, text)

CREATE FUNCTION rota.sweep_define(sweep_name text, sweep_queue text, sweep_max_running integer, sweep_cron text) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  previous_queue text;
  carried integer;
begin
  perform pg_advisory_xact_lock(hashtext('"rota".sweeps'), hashtext(sweep_name));
  select s.queue into previous_queue from "rota".sweeps as s where s.name = sweep_name;
  insert into "rota".sweeps as s (name, queue, max_running, cron)
  values (sweep_name, sweep_queue, sweep_max_running, sweep_cron)
  on conflict (name) do update
    set queue = excluded.queue, max_running = excluded.max_running, cron = excluded.cron,
        updated_at = "rota".clock_now();
  if previous_queue is null then return 0; end if;
  update "rota".jobs as j
  set queue = sweep_queue, concurrency_limit = sweep_max_running
  where j.state in ('available', 'scheduled') and hashtext(j.queue) = hashtext(previous_queue)
    and j.queue = previous_queue and j.task = 'sweep:' || sweep_name and j.schedule_id is null;
  get diagnostics carried = row_count;
  if carried > 0 then perform "rota".notify_jobs(array[sweep_queue]); end if;
  return carried;
end
$$;

-- FUNCTION: sweep_top_up(text, bigint)

CREATE FUNCTION rota.sweep_top_up(sweep_name text, running_instance bigint DEFAULT NULL::bigint) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  sweep "rota".sweeps%rowtype;
  task_name text;
  existing integer;
  added integer;
begin
  perform pg_advisory_xact_lock(hashtext('"rota".sweeps'), hashtext(sweep_name));
  select * into sweep from "rota".sweeps as s where s.name = sweep_name;
  if not found then return null; end if;
  task_name := 'sweep:' || sweep.name;
  -- One count per state, each through its index (migrations 0006, 0012).
  select (select count(*) from "rota".jobs as j
          where j.state = 'running' and j.concurrency_key = task_name
            and j.task = task_name and j.schedule_id is null
            and j.id is distinct from running_instance)
       + (select count(*) from "rota".jobs as j
          where j.state = 'available' and hashtext(j.queue) = hashtext(sweep.queue)
            and j.queue = sweep.queue and j.task = task_name and j.schedule_id is null)
       + (select count(*) from "rota".jobs as j
          where j.state = 'scheduled' and hashtext(j.queue) = hashtext(sweep.queue)
            and j.queue = sweep.queue and j.task = task_name and j.schedule_id is null)
    into existing;
  added := greatest(0, sweep.max_running - existing);
  insert into "rota".jobs (queue, task, payload, state, run_at, max_attempts,
                               concurrency_key, concurrency_limit, created_at)
  select sweep.queue, task_name, '{}'::jsonb, 'available', "rota".clock_now(), 5,
         task_name, sweep.max_running, "rota".clock_now()
  from generate_series(1, added);
  update "rota".sweeps set last_kicked_at = "rota".clock_now() where name = sweep.name;
  if added > 0 then perform "rota".notify_jobs(array[sweep.queue]); end if;
  return added;
end
$$;

-- FUNCTION: unique_key_queued(text)

CREATE FUNCTION rota.unique_key_queued(key text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  select exists (
    select 1 from "rota".jobs
    where unique_key = key and state in ('scheduled', 'available')
  )
$$;

-- SEQUENCE: batches_id_seq

ALTER TABLE rota.batches ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME rota.batches_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- TABLE: captures

CREATE TABLE rota.captures (
    name text NOT NULL,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    columns text[],
    events text[] NOT NULL,
    task text NOT NULL,
    key_columns text[] NOT NULL,
    queue text NOT NULL,
    created_at timestamp with time zone DEFAULT rota.clock_now() NOT NULL,
    updated_at timestamp with time zone DEFAULT rota.clock_now() NOT NULL,
    CONSTRAINT captures_columns_valid CHECK (((columns IS NULL) OR (cardinality(columns) >= 1))),
    CONSTRAINT captures_events_valid CHECK (((cardinality(events) >= 1) AND (events <@ ARRAY['insert'::text, 'update'::text, 'delete'::text]))),
    CONSTRAINT captures_key_valid CHECK ((cardinality(key_columns) >= 1)),
    CONSTRAINT captures_name_valid CHECK ((name ~ '^[a-z][a-z0-9_-]{0,39}$'::text)),
    CONSTRAINT captures_queue_valid CHECK ((queue ~ '^[A-Za-z0-9_.:-]{1,128}$'::text)),
    CONSTRAINT captures_task_valid CHECK ((task ~ '^[A-Za-z0-9_.:/-]{1,128}$'::text))
);

-- TABLE: clock

CREATE TABLE rota.clock (
    singleton boolean DEFAULT true NOT NULL,
    offset_by interval DEFAULT '00:00:00'::interval NOT NULL,
    CONSTRAINT clock_singleton CHECK (singleton)
);

-- TABLE: jobs

CREATE TABLE rota.jobs (
    id bigint NOT NULL,
    queue text DEFAULT 'default'::text NOT NULL,
    task text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    state text DEFAULT 'available'::text NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    run_at timestamp with time zone NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 25 NOT NULL,
    backoff jsonb,
    timeout_ms integer,
    lease_holder text,
    lease_expires_at timestamp with time zone,
    cancel_requested_at timestamp with time zone,
    unique_key text,
    concurrency_key text,
    batch_id bigint,
    schedule_id bigint,
    target_key text,
    occurrence_at timestamp with time zone,
    schedule_version text,
    deadline_at timestamp with time zone,
    last_error jsonb,
    created_at timestamp with time zone DEFAULT rota.clock_now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    overlap text,
    unstarted_rescues smallint DEFAULT 0 NOT NULL,
    concurrency_limit integer,
    planned_offset_ms bigint,
    distribution text,
    error_history jsonb,
    trace_context jsonb,
    CONSTRAINT jobs_attempts_valid CHECK ((attempts >= 0)),
    CONSTRAINT jobs_concurrency_limit_valid CHECK (((concurrency_limit IS NULL) OR ((concurrency_limit >= 1) AND (concurrency_key IS NOT NULL)))),
    CONSTRAINT jobs_lease_only_running CHECK (((lease_holder IS NULL) OR (state = 'running'::text))),
    CONSTRAINT jobs_max_attempts_valid CHECK ((max_attempts >= 1)),
    CONSTRAINT jobs_overlap_key CHECK (((overlap IS NULL) OR (concurrency_key IS NOT NULL))),
    CONSTRAINT jobs_overlap_valid CHECK ((overlap = ANY (ARRAY['skip'::text, 'queue'::text]))),
    CONSTRAINT jobs_queue_length CHECK (((octet_length(queue) >= 1) AND (octet_length(queue) <= 128))),
    CONSTRAINT jobs_state_valid CHECK ((state = ANY (ARRAY['scheduled'::text, 'available'::text, 'running'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text, 'skipped'::text, 'superseded'::text, 'missed'::text]))),
    CONSTRAINT jobs_task_length CHECK (((octet_length(task) >= 1) AND (octet_length(task) <= 128))),
    CONSTRAINT jobs_timeout_valid CHECK (((timeout_ms IS NULL) OR (timeout_ms > 0)))
)
WITH (autovacuum_vacuum_scale_factor='0.01');

-- SEQUENCE: jobs_id_seq

ALTER TABLE rota.jobs ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME rota.jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- TABLE: leases

CREATE TABLE rota.leases (
    name text NOT NULL,
    holder text NOT NULL,
    epoch bigint NOT NULL,
    acquired_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

-- TABLE: migrations

CREATE TABLE rota.migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    complete boolean DEFAULT true NOT NULL
);

-- TABLE: queue_minutes

CREATE TABLE rota.queue_minutes (
    queue text NOT NULL,
    minute timestamp with time zone NOT NULL,
    succeeded integer DEFAULT 0 NOT NULL,
    failed integer DEFAULT 0 NOT NULL,
    retried integer DEFAULT 0 NOT NULL,
    cancelled integer DEFAULT 0 NOT NULL
);

-- TABLE: queues

CREATE TABLE rota.queues (
    name text NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    concurrency_limit integer,
    CONSTRAINT queues_concurrency_limit_valid CHECK ((concurrency_limit >= 1)),
    CONSTRAINT queues_name_valid CHECK ((name ~ '^[A-Za-z0-9_.:-]{1,128}$'::text))
);

-- TABLE: schedule_targets

CREATE TABLE rota.schedule_targets (
    schedule_id bigint NOT NULL,
    target_key text NOT NULL COLLATE pg_catalog."C",
    payload jsonb,
    enabled boolean DEFAULT true NOT NULL,
    from_source boolean DEFAULT false NOT NULL,
    source_seen bigint,
    created_at timestamp with time zone DEFAULT rota.clock_now() NOT NULL,
    updated_at timestamp with time zone DEFAULT rota.clock_now() NOT NULL,
    CONSTRAINT schedule_targets_key_valid CHECK (((octet_length(target_key) >= 1) AND (octet_length(target_key) <= 200)))
);

-- TABLE: schedules

CREATE TABLE rota.schedules (
    id bigint NOT NULL,
    name text NOT NULL,
    task text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    queue text DEFAULT 'default'::text NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    max_attempts integer,
    cron text,
    every text,
    anchor timestamp with time zone,
    timezone text DEFAULT 'UTC'::text NOT NULL,
    catch_up text DEFAULT 'latest'::text NOT NULL,
    catch_up_window_ms bigint,
    overlap text DEFAULT 'allow'::text NOT NULL,
    horizon integer DEFAULT 3 NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    owner text DEFAULT 'rota'::text NOT NULL,
    handover boolean DEFAULT false NOT NULL,
    cursor_at timestamp with time zone,
    fill_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    last_planned_at timestamp with time zone,
    materialized_version text,
    last_error text,
    quiesced_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT rota.clock_now() NOT NULL,
    updated_at timestamp with time zone DEFAULT rota.clock_now() NOT NULL,
    horizon_ms integer DEFAULT 60000 NOT NULL,
    fan_out boolean DEFAULT false NOT NULL,
    window_ms bigint,
    distribution text DEFAULT 'random'::text NOT NULL,
    batch_size integer,
    batch_every_ms bigint,
    seed bigint,
    target_source text,
    version text GENERATED ALWAYS AS (md5((((((((((((((((((((((((task || ''::text) || (payload)::text) || ''::text) || queue) || ''::text) || (priority)::text) || ''::text) || COALESCE((max_attempts)::text, ''::text)) || ''::text) || COALESCE(cron, ''::text)) || ''::text) || COALESCE(every, ''::text)) || ''::text) || COALESCE((EXTRACT(epoch FROM (anchor - '1970-01-01 00:00:00+00'::timestamp with time zone)))::text, ''::text)) || ''::text) || timezone) || ''::text) || catch_up) || ''::text) || COALESCE((catch_up_window_ms)::text, ''::text)) || ''::text) || overlap) ||
CASE
    WHEN (fan_out OR (window_ms IS NOT NULL) OR (distribution <> 'random'::text) OR (seed IS NOT NULL) OR (target_source IS NOT NULL)) THEN (((((((((((((''::text || (fan_out)::text) || ''::text) || COALESCE((window_ms)::text, ''::text)) || ''::text) || distribution) || ''::text) || COALESCE((batch_size)::text, ''::text)) || ''::text) || COALESCE((batch_every_ms)::text, ''::text)) || ''::text) || COALESCE((seed)::text, ''::text)) || ''::text) || COALESCE(target_source, ''::text))
    ELSE ''::text
END))) STORED,
    CONSTRAINT schedules_batch_every_valid CHECK ((batch_every_ms >= 1)),
    CONSTRAINT schedules_batch_size_valid CHECK ((batch_size >= 1)),
    CONSTRAINT schedules_batches_complete CHECK (((distribution = 'batches'::text) = ((batch_size IS NOT NULL) AND (batch_every_ms IS NOT NULL)))),
    CONSTRAINT schedules_catch_up_valid CHECK ((catch_up = ANY (ARRAY['all'::text, 'latest'::text, 'none'::text]))),
    CONSTRAINT schedules_distribution_valid CHECK ((distribution ~ '^[A-Za-z][A-Za-z0-9_.:-]{0,63}$'::text)),
    CONSTRAINT schedules_horizon_ms_valid CHECK (((horizon_ms >= 0) AND (horizon_ms <= 86400000))),
    CONSTRAINT schedules_horizon_valid CHECK (((horizon >= 1) AND (horizon <= 1000))),
    CONSTRAINT schedules_max_attempts_valid CHECK ((max_attempts >= 1)),
    CONSTRAINT schedules_name_length CHECK (((octet_length(name) >= 1) AND (octet_length(name) <= 200))),
    CONSTRAINT schedules_one_spec CHECK (((cron IS NULL) <> (every IS NULL))),
    CONSTRAINT schedules_overlap_valid CHECK ((overlap = ANY (ARRAY['allow'::text, 'skip'::text, 'queue'::text]))),
    CONSTRAINT schedules_owner_valid CHECK ((owner = ANY (ARRAY['rota'::text, 'external'::text]))),
    CONSTRAINT schedules_queue_length CHECK (((octet_length(queue) >= 1) AND (octet_length(queue) <= 128))),
    CONSTRAINT schedules_task_length CHECK (((octet_length(task) >= 1) AND (octet_length(task) <= 128))),
    CONSTRAINT schedules_window_ms_valid CHECK ((window_ms > 0)),
    CONSTRAINT schedules_window_valid CHECK ((catch_up_window_ms > 0))
);

-- SEQUENCE: schedules_id_seq

ALTER TABLE rota.schedules ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME rota.schedules_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

-- TABLE: sweeps

CREATE TABLE rota.sweeps (
    name text NOT NULL,
    queue text NOT NULL,
    max_running integer NOT NULL,
    cron text,
    last_kicked_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT rota.clock_now() NOT NULL,
    updated_at timestamp with time zone DEFAULT rota.clock_now() NOT NULL,
    CONSTRAINT sweeps_max_running_valid CHECK ((max_running >= 1)),
    CONSTRAINT sweeps_name_valid CHECK ((name ~ '^[A-Za-z0-9_.:-]{1,100}$'::text)),
    CONSTRAINT sweeps_queue_valid CHECK ((queue ~ '^[A-Za-z0-9_.:-]{1,128}$'::text))
);

-- TABLE: workers

CREATE TABLE rota.workers (
    id text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    queues text[] NOT NULL,
    tasks text[] NOT NULL,
    concurrency integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    last_seen_at timestamp with time zone NOT NULL,
    stopped_at timestamp with time zone,
    running integer DEFAULT 0 NOT NULL
);

-- CONSTRAINT: batches batches_pkey

ALTER TABLE ONLY rota.batches
    ADD CONSTRAINT batches_pkey PRIMARY KEY (id);

-- CONSTRAINT: captures captures_pkey

ALTER TABLE ONLY rota.captures
    ADD CONSTRAINT captures_pkey PRIMARY KEY (name);

-- CONSTRAINT: clock clock_pkey

ALTER TABLE ONLY rota.clock
    ADD CONSTRAINT clock_pkey PRIMARY KEY (singleton);

-- CONSTRAINT: jobs jobs_pkey

ALTER TABLE ONLY rota.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

-- CONSTRAINT: leases leases_pkey

ALTER TABLE ONLY rota.leases
    ADD CONSTRAINT leases_pkey PRIMARY KEY (name);

-- CONSTRAINT: migrations migrations_pkey

ALTER TABLE ONLY rota.migrations
    ADD CONSTRAINT migrations_pkey PRIMARY KEY (version);

-- CONSTRAINT: queue_minutes queue_minutes_pkey

ALTER TABLE ONLY rota.queue_minutes
    ADD CONSTRAINT queue_minutes_pkey PRIMARY KEY (queue, minute);

-- CONSTRAINT: queues queues_pkey

ALTER TABLE ONLY rota.queues
    ADD CONSTRAINT queues_pkey PRIMARY KEY (name);

-- CONSTRAINT: schedule_targets schedule_targets_pkey

ALTER TABLE ONLY rota.schedule_targets
    ADD CONSTRAINT schedule_targets_pkey PRIMARY KEY (schedule_id, target_key);

-- CONSTRAINT: schedules schedules_name_key

ALTER TABLE ONLY rota.schedules
    ADD CONSTRAINT schedules_name_key UNIQUE (name);

-- CONSTRAINT: schedules schedules_pkey

ALTER TABLE ONLY rota.schedules
    ADD CONSTRAINT schedules_pkey PRIMARY KEY (id);

-- CONSTRAINT: sweeps sweeps_pkey

ALTER TABLE ONLY rota.sweeps
    ADD CONSTRAINT sweeps_pkey PRIMARY KEY (name);

-- CONSTRAINT: workers workers_pkey

ALTER TABLE ONLY rota.workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);

-- INDEX: batches_expiring

CREATE INDEX batches_expiring ON rota.batches USING btree (expires_at) WHERE ((finished_at IS NULL) AND (expires_at IS NOT NULL));

-- INDEX: batches_finished

CREATE INDEX batches_finished ON rota.batches USING btree (finished_at) WHERE (finished_at IS NOT NULL);

-- INDEX: jobs_available

CREATE INDEX jobs_available ON rota.jobs USING btree (hashtext(queue), priority DESC, run_at, id) WHERE (state = 'available'::text);

-- INDEX: jobs_batch_open

CREATE INDEX jobs_batch_open ON rota.jobs USING btree (batch_id) WHERE ((batch_id IS NOT NULL) AND (state = ANY (ARRAY['scheduled'::text, 'available'::text, 'running'::text])));

-- INDEX: jobs_ended_by_state

CREATE INDEX jobs_ended_by_state ON rota.jobs USING btree (state, queue, id) WHERE (state = ANY (ARRAY['failed'::text, 'cancelled'::text, 'skipped'::text, 'superseded'::text, 'missed'::text]));

-- INDEX: jobs_execution_once

CREATE UNIQUE INDEX jobs_execution_once ON rota.jobs USING btree (schedule_id, target_key, occurrence_at) WHERE ((occurrence_at IS NOT NULL) AND (state <> 'superseded'::text));

-- INDEX: jobs_finished

CREATE INDEX jobs_finished ON rota.jobs USING btree (finished_at) WHERE ((state = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text, 'skipped'::text, 'superseded'::text, 'missed'::text])) AND (schedule_id IS NULL));

-- INDEX: jobs_finished_executions

CREATE INDEX jobs_finished_executions ON rota.jobs USING btree (finished_at) WHERE ((state = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text, 'skipped'::text, 'superseded'::text, 'missed'::text])) AND (schedule_id IS NOT NULL));

-- INDEX: jobs_running_concurrency

CREATE UNIQUE INDEX jobs_running_concurrency ON rota.jobs USING btree (concurrency_key) WHERE ((state = 'running'::text) AND (overlap IS NOT NULL));

-- INDEX: jobs_running_key

CREATE INDEX jobs_running_key ON rota.jobs USING btree (concurrency_key) WHERE ((state = 'running'::text) AND (concurrency_key IS NOT NULL));

-- INDEX: jobs_running_lease

CREATE INDEX jobs_running_lease ON rota.jobs USING btree (lease_expires_at) WHERE (state = 'running'::text);

-- INDEX: jobs_schedule

CREATE INDEX jobs_schedule ON rota.jobs USING btree (schedule_id, run_at) WHERE (schedule_id IS NOT NULL);

-- INDEX: jobs_scheduled

CREATE INDEX jobs_scheduled ON rota.jobs USING btree (hashtext(queue), run_at, id) WHERE (state = 'scheduled'::text);

-- INDEX: jobs_unique_key_queued

CREATE UNIQUE INDEX jobs_unique_key_queued ON rota.jobs USING btree (unique_key) WHERE ((unique_key IS NOT NULL) AND (state = ANY (ARRAY['scheduled'::text, 'available'::text])));

-- INDEX: queue_minutes_minute

CREATE INDEX queue_minutes_minute ON rota.queue_minutes USING btree (minute);

-- INDEX: schedules_drifted

CREATE INDEX schedules_drifted ON rota.schedules USING btree (id) WHERE ((materialized_version IS DISTINCT FROM version) AND enabled AND (NOT paused) AND (owner = 'rota'::text));

-- INDEX: schedules_fill

CREATE INDEX schedules_fill ON rota.schedules USING btree (fill_at) WHERE (enabled AND (NOT paused) AND (owner = 'rota'::text));

-- INDEX: workers_last_seen

CREATE INDEX workers_last_seen ON rota.workers USING btree (last_seen_at);

-- FK CONSTRAINT: schedule_targets schedule_targets_schedule_id_fkey

ALTER TABLE ONLY rota.schedule_targets
    ADD CONSTRAINT schedule_targets_schedule_id_fkey FOREIGN KEY (schedule_id) REFERENCES rota.schedules(id) ON DELETE CASCADE;
