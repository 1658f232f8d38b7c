-- Queues as rows, for what is set per queue: `paused` (the kill switch) for
-- now. A queue needs no row to exist: jobs name their queue, and a queue
-- without a row is not paused. pause()/resume() write the row.
create table {{schema}}.queues (
  name text primary key
    constraint queues_name_valid check (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  paused boolean not null default false,
  updated_at timestamptz not null default now()
);

-- Whether `queue` is paused. One definition for every statement that claims
-- or waits for jobs (Claim, ClaimOne, NextDue), each of which asks it once per
-- queue it serves, as a filter beside the claim index's conditions: a
-- primary-key lookup the planner inlines. (An anti-join of the queues a
-- worker serves against this table, tried first, made each claim build a
-- hash table and cost about 0.2 ms more per claim; this form measured the
-- same as a claim without the check.)
create function {{schema}}.queue_paused(queue text) returns boolean
  language sql stable
as $$
  select exists (select 1 from {{schema}}.queues as p where p.name = queue and p.paused)
$$;
