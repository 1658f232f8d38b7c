-- Enqueue from SQL (docs/sql-enqueue.md): {{schema}}.enqueue(task, payload,
-- options) returns the new job's id, for triggers, psql and programs in other
-- languages. It refuses what the TypeScript enqueue refuses, by the same rules
-- (queue/job-options.ts), and says so with the same error code at the end of
-- the message ("... [INVALID_TASK_NAME]", SQLSTATE 22023), so bad input from a
-- trigger is refused like bad input from TypeScript, and nothing is written.
-- It writes the row the TypeScript enqueue writes (enqueue.sql, Insert), and
-- wakes the workers of its queue when its transaction commits.

-- The length in UTF-8 bytes of `doc` as JSON.stringify writes it, the text the
-- TypeScript enqueue measures against its payload limit. jsonb's own text puts
-- a space after every ':' and ',' between members and elements, which
-- JSON.stringify does not; those spaces are counted and taken off. Strings are
-- escaped alike by both. (Numbers are written as jsonb keeps them: 1.0 stays
-- 1.0 where JavaScript writes 1.) Walks every object and array, so a caller
-- asks only when jsonb's text is over the limit.
create function {{schema}}.json_text_bytes(doc jsonb) returns bigint
  language sql immutable strict parallel safe
as $$
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

-- Enqueues one job and returns its id. Options (jsonb, snake_case names of
-- the TypeScript options): queue, run_at (ISO 8601 text with an offset) or
-- delay_ms (a number >= 0), priority, max_attempts, unique_key, on_conflict
-- ("keep" | "replace"). The database does not know a task's defaults, which
-- live in the code that defines it: a job enqueued here takes the options it
-- is given or rota's defaults (queue "default", 25 attempts, the default
-- backoff, no concurrency key).
--
-- A unique key works as in TypeScript: while a queued (scheduled or
-- available) job has the key, 'keep' writes nothing and returns that job's
-- id, 'replace' overwrites its payload, run time and options and returns its
-- id. Two transactions enqueueing one key at once: the second one's insert
-- waits for the first to end (the unique index, migration 0008), then
-- replaces the first one's job, or with 'keep' reads its id in a fresh
-- snapshot (each statement of a VOLATILE function takes one); if that job
-- started or went in between, the key is free and the insert is tried again.
-- (Under REPEATABLE READ the second fails with a serialization error instead,
-- as any insert meeting a row its snapshot cannot see: the caller retries.)
--
-- The wake-up names only the queue (notify_jobs): like every NOTIFY it is
-- delivered when the caller's transaction commits, maybe long after this
-- statement's clock, so it cannot say when a delayed job comes due (workers
-- ask, NextDue). PostgreSQL folds a transaction's identical notifications into
-- one, so a trigger enqueueing for 10,000 rows sends one per queue.
create function {{schema}}.enqueue(task text, payload jsonb default '{}', options jsonb default '{}')
  returns bigint
  language plpgsql volatile
as $$
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
    bytes := {{schema}}.json_text_bytes(payload);
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
  clock := {{schema}}.clock_now();
  due := coalesce(run_time, clock + make_interval(secs => coalesce(delay, 0)::float8 / 1000.0));
  initial_state := case when due > clock then 'scheduled' else 'available' end;

  if job_key is null then
    insert into {{schema}}.jobs (queue, task, payload, state, priority, run_at, max_attempts, created_at)
    values (job_queue, enqueue.task, enqueue.payload, initial_state, job_priority, due,
            job_max_attempts, clock)
    returning id into job_id;
  elsif conflict = 'replace' then
    -- What Insert's 'replace' overwrites (enqueue.sql), column for column.
    insert into {{schema}}.jobs as j (queue, task, payload, state, priority, run_at, max_attempts,
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
      insert into {{schema}}.jobs as j (queue, task, payload, state, priority, run_at, max_attempts,
                                        unique_key, created_at)
      values (job_queue, enqueue.task, enqueue.payload, initial_state, job_priority, due,
              job_max_attempts, job_key, clock)
      on conflict (unique_key) where unique_key is not null and state in ('scheduled', 'available')
      do nothing
      returning j.id into job_id;
      exit when found;
      -- Kept: nothing written, nobody to wake.
      select j.id into job_id from {{schema}}.jobs as j
      where j.unique_key = job_key and j.state in ('scheduled', 'available');
      if found then
        return job_id;
      end if;
    end loop;
  end if;

  perform {{schema}}.notify_jobs(array[job_queue]);
  return job_id;
end
$$;
