-- Global concurrency limits (docs/capacity.md): per queue (queues.concurrency_limit,
-- set by setLimit) and per concurrency key (jobs.concurrency_limit, carried by
-- each job beside its concurrency_key). A job counts against its limits from
-- its claim until its outcome is written: while it is 'running'.

alter table {{schema}}.queues
  add column concurrency_limit integer
    constraint queues_concurrency_limit_valid check (concurrency_limit >= 1);

-- The check NOT VALID, validated after the transaction (the end of this
-- file): validating reads the whole table, which here would hold its
-- writers. New rows are checked at once either way.
alter table {{schema}}.jobs
  add column concurrency_limit integer,
  add constraint jobs_concurrency_limit_valid
    check (concurrency_limit is null or (concurrency_limit >= 1 and concurrency_key is not null))
    not valid;

-- The unique index kept one running execution per key for the overlap
-- policies of schedules (limit one); it now covers those executions only, and
-- a plain index counts the running jobs of a key whatever its limit. Both
-- are built at the end of this file, after the transaction.

-- A limited queue's running jobs are counted through jobs_running_lease (the
-- running jobs of every queue), not an index of their own: one more index
-- entry for every claimed job cost every claim about 14% (2.3 µs a job, 200
-- jobs a claim), to spare only the claims of limited queues a scan of the
-- running jobs, which the workers' capacity bounds.

-- (queue_paused, migration 0011, is left to NextDue: Claim asks queue_room,
-- which answers for a pause too, and ClaimOne reads the queue's row itself.)

-- What a claim may take from `queue`: `room` 0 while it is paused, null when
-- it has no limit (nothing is locked then), else its limit less its running
-- jobs; `limit_reached` when the limit leaves no room.
--
-- A limited queue's row is locked (until the claim's transaction ends) before
-- its running jobs are counted, so claims of one limited queue take turns.
-- The count must see the jobs the previous claim started: a claim statement
-- reads with the snapshot it took when it began, which may be older than that
-- claim's commit, so the count is made here, in a VOLATILE function, whose
-- statements each take a fresh snapshot (READ COMMITTED) after the lock is
-- held. Counted in the claim statement itself, two claims that both waited
-- for the lock would both see the room the first one filled.
create function {{schema}}.queue_room(queue text, out room integer, out limit_reached boolean)
  language plpgsql volatile
as $$
declare
  settings record;
begin
  limit_reached := false;
  select q.paused, q.concurrency_limit into settings from {{schema}}.queues as q where q.name = queue_room.queue;
  if not found or not (settings.paused or settings.concurrency_limit is not null) then return; end if;
  if settings.concurrency_limit is not null then
    select q.paused, q.concurrency_limit into settings
    from {{schema}}.queues as q where q.name = queue_room.queue for no key update;
  end if;
  if settings.paused then room := 0; return; end if;
  if settings.concurrency_limit is null then return; end if;
  room := greatest(0, settings.concurrency_limit - (
    select count(*) from {{schema}}.jobs as j where j.queue = queue_room.queue and j.state = 'running'));
  limit_reached := room = 0;
end
$$;

-- The running jobs of concurrency key `key`, counted after taking the key's
-- lock for the rest of the claim's transaction (a transaction-level advisory
-- lock: keys have no row to lock). Fresh for the same reason as queue_room.
-- A claim takes the locks of its keys in key order, after those of its
-- queues (in name order), so two claims never wait for each other in a ring.
create function {{schema}}.key_running(key text) returns integer
  language plpgsql volatile
as $$
begin
  perform pg_advisory_xact_lock(hashtext('{{schema}}.concurrency_key'), hashtext(key));
  return (select count(*) from {{schema}}.jobs as j
          where j.concurrency_key = key and j.state = 'running');
end
$$;

-- Whether `key` has `cap` jobs running by the calling statement's snapshot:
-- the claim's scan passes over the jobs of a key at its limit with this (so a
-- busy key's backlog never crowds out the others); key_running then decides
-- under the key's lock.
create function {{schema}}.key_full(key text, cap integer) returns boolean
  language sql stable
as $$
  select count(*) >= cap from (
    select 1 from {{schema}}.jobs as j
    where j.concurrency_key = key and j.state = 'running'
    limit cap
  ) as running
$$;

-- Whether `queue` has its limit running, by the calling statement's snapshot:
-- NextDue passes over such a queue (a worker waits for the wake-up of the
-- outcome that frees a slot, not for a due job it may not start).
create function {{schema}}.queue_full(queue text) returns boolean
  language sql stable
as $$
  select exists (
    select 1 from {{schema}}.queues as p
    where p.name = queue and p.concurrency_limit is not null
      and p.concurrency_limit <= (select count(*) from {{schema}}.jobs as j
                                  where j.queue = p.name and j.state = 'running'))
$$;

-- rota:concurrently
-- Without holding the jobs table's writers (see migrate.ts); each statement
-- is safe to run again. jobs_running_concurrency is rebuilt under a second
-- name, then takes the first.
alter table {{schema}}.jobs validate constraint jobs_concurrency_limit_valid;
drop index concurrently if exists {{schema}}.jobs_running_concurrency_next;
create unique index concurrently jobs_running_concurrency_next on {{schema}}.jobs (concurrency_key)
  where state = 'running' and overlap is not null;
drop index concurrently if exists {{schema}}.jobs_running_concurrency;
alter index if exists {{schema}}.jobs_running_concurrency_next rename to jobs_running_concurrency;
drop index concurrently if exists {{schema}}.jobs_running_key;
create index concurrently jobs_running_key on {{schema}}.jobs (concurrency_key)
  where state = 'running' and concurrency_key is not null;
