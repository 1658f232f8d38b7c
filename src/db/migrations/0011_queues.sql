-- Queues as rows, for what is set per queue: `paused` (the kill switch) for
-- now. A queue needs no row to exist: jobs name their queue, and a queue
-- without a row is not paused. pause()/resume() write the row.
create table {{schema}}.queues (
  name text primary key
    constraint queues_name_valid check (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  paused boolean not null default false,
  updated_at timestamptz not null default now()
);

-- The queues among `names` whose jobs may be claimed: those not paused. One
-- definition for every statement that claims or waits for jobs (Claim,
-- ClaimOne, NextDue); a plain SQL function the planner inlines, so a claim
-- pays a lookup of the (small) queues table per queue it serves.
create function {{schema}}.unpaused(names text[]) returns setof text
  language sql stable
as $$
  select q.name from unnest(names) as q(name)
  where not exists (select 1 from {{schema}}.queues as p where p.name = q.name and p.paused)
$$;
