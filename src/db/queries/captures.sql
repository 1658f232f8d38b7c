-- Every statement on {{schema}}.captures (migration 0016), and the DDL that
-- change capture installs on a user's table (capture/captures.ts; the design
-- is in docs/capture.md). A capture named <name> owns the function
-- {{schema}}."capture_<name>"() and one trigger per event on its table,
-- rota_capture_<name>_<event>.
--
-- The DDL statements take no parameters (PostgreSQL binds none in DDL): their
-- {{fragments}} are spliced in by capture/trigger-sql.ts, every identifier
-- quoted with pg.escapeIdentifier and every value with pg.escapeLiteral,
-- from names checked against the catalog first.

-- name: Lock
-- Serializes add and remove of capture :name (held to the transaction's end),
-- so two processes adding one capture at once install it once.
select pg_advisory_xact_lock(hashtext('{{schema}}.captures'), hashtext(:name)) is null as locked;

-- name: Inspect
-- What the catalog says of table :table (a name as written in SQL, schema-
-- qualified or found on the search path): its schema and name, its kind
-- ('r' table, 'p' partitioned table; the others cannot carry transition
-- tables), its columns in order with NOT NULL, and the column sets that
-- identify a row: the primary key first, then each unique index that is
-- immediate (checked at each statement, so a statement's rows never share a
-- key), on plain columns, and not partial. No row: no such table.
with target as (
  select c.oid, n.nspname, c.relname, c.relkind
  from pg_class as c
  join pg_namespace as n on n.oid = c.relnamespace
  where c.oid = to_regclass(:table)
)
select t.nspname::text as table_schema, t.relname::text as table_name, t.relkind::text as kind,
       (select coalesce(jsonb_agg(jsonb_build_object('name', a.attname, 'notNull', a.attnotnull)
                                  order by a.attnum), '[]'::jsonb)
        from pg_attribute as a
        where a.attrelid = t.oid and a.attnum > 0 and not a.attisdropped) as columns,
       (select coalesce(jsonb_agg(keys.names order by keys.is_primary desc, keys.names), '[]'::jsonb)
        from (select i.indisprimary as is_primary,
                     (select jsonb_agg(a.attname order by k.ord)
                      from unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
                      join pg_attribute as a on a.attrelid = t.oid and a.attnum = k.attnum) as names
              from pg_index as i
              where i.indrelid = t.oid and i.indisunique and i.indimmediate and i.indisvalid
                and i.indpred is null and i.indexprs is null) as keys) as unique_keys,
       (select coalesce(jsonb_agg(a.attname order by k.ord), '[]'::jsonb)
        from pg_index as i
        cross join unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
        join pg_attribute as a on a.attrelid = t.oid and a.attnum = k.attnum
        where i.indrelid = t.oid and i.indisprimary) as primary_key
from target as t;

-- name: Get
-- Capture :name as recorded.
select name, table_schema, table_name, columns, events, task, key_columns, queue,
       created_at, updated_at
from {{schema}}.captures
where name = :name;

-- name: Upsert
-- Records capture :name, or updates it in place (the caller has checked that
-- a capture of that name, if any, is on the same table).
insert into {{schema}}.captures as c (name, table_schema, table_name, columns, events, task,
                                      key_columns, queue)
values (:name, :tableSchema, :tableName, :columns::text[], :events::text[], :task,
        :keyColumns::text[], :queue)
on conflict (name) do update
  set table_schema = excluded.table_schema, table_name = excluded.table_name,
      columns = excluded.columns, events = excluded.events, task = excluded.task,
      key_columns = excluded.key_columns, queue = excluded.queue,
      updated_at = {{schema}}.clock_now()
returning name, table_schema, table_name, columns, events, task, key_columns, queue,
          created_at, updated_at;

-- name: Delete
-- Forgets capture :name (its function and triggers are dropped first).
delete from {{schema}}.captures where name = :name;

-- name: Triggers
-- Every trigger that calls capture :name's function, on whatever table and
-- under whatever name it now has (found by its dependency, pg_trigger.tgfoid).
select t.tgname::text as name, n.nspname::text as table_schema, c.relname::text as table_name
from pg_trigger as t
join pg_class as c on c.oid = t.tgrelid
join pg_namespace as n on n.oid = c.relnamespace
where t.tgfoid = to_regprocedure('{{schema}}.' || quote_ident('capture_' || :name) || '()')
order by 1;

-- name: List
-- Every capture (or only capture :name) as recorded, checked against the
-- catalog: whether its table and its function still exist, which of its
-- events have no trigger (calling its function, on its table) and which
-- have one disabled (ALTER TABLE … DISABLE TRIGGER), how many of its jobs
-- are queued, and whether its queue is paused (the kill switch). Queued jobs
-- are counted in the capture's queue through the claim indexes (migration
-- 0006), by their unique_key prefix (starts_with: LIKE would read the "_" of
-- a name as a wildcard).
with listed as (
  select c.*,
         to_regclass(quote_ident(c.table_schema) || '.' || quote_ident(c.table_name)) as table_oid,
         to_regprocedure('{{schema}}.' || quote_ident('capture_' || c.name) || '()') as function_oid
  from {{schema}}.captures as c
  where :name::text is null or c.name = :name
)
select l.name, l.table_schema, l.table_name, l.columns, l.events, l.task, l.key_columns, l.queue,
       l.created_at, l.updated_at,
       l.table_oid is not null as table_exists,
       l.function_oid is not null as function_exists,
       triggers.missing_events, triggers.disabled_events,
       coalesce(q.paused, false) as paused,
       (select count(*) from {{schema}}.jobs as j
        where j.state in ('available', 'scheduled') and hashtext(j.queue) = hashtext(l.queue)
          and j.queue = l.queue and starts_with(j.unique_key, 'capture:' || l.name || ':'))::int
         as queued
from listed as l
cross join lateral (
  select coalesce(array_agg(e.event) filter (where t.tgenabled is null), '{}') as missing_events,
         coalesce(array_agg(e.event) filter (where t.tgenabled in ('D', 'R')), '{}')
           as disabled_events
  from unnest(l.events) as e(event)
  left join lateral (
    -- The event's trigger: one on the table that calls the function and
    -- fires on the event (tgtype's bits: 4 insert, 8 delete, 16 update),
    -- an enabled one first. Disabled: 'D', or 'R' (it fires only for
    -- sessions in replica mode).
    select t.tgenabled from pg_trigger as t
    where t.tgrelid = l.table_oid and t.tgfoid = l.function_oid
      and t.tgtype & (case e.event when 'insert' then 4 when 'delete' then 8 else 16 end) <> 0
    order by t.tgenabled in ('D', 'R')
    limit 1
  ) as t on true
) as triggers
left join {{schema}}.queues as q on q.name = l.queue
order by l.name;

-- name: CreateFunction
-- The trigger function of one capture: for the rows the statement changed
-- (its transition tables), one job per row key, written in the statement's
-- own transaction (rolled back with it), coalesced on unique_key into the
-- key's queued job if it has one: that job takes the latest operation and
-- row image and keeps its place in line (its run_at, its state: a retry
-- waiting out its backoff still waits). A job already running for the key
-- does not count (the unique index covers queued states only), so a change
-- made after a worker read the row is processed again.
--
-- An UPDATE is compared per key, old image against new: a key whose image
-- (the captured columns) did not change writes nothing; a key the statement
-- moved away from reads as a delete, and the key it moved to as an insert.
-- DISTINCT ON guards the INSERT … ON CONFLICT, which refuses to touch one
-- row twice, should the table's key stop being unique after `add` checked it.
--
-- SECURITY DEFINER: it runs as the role that added the capture, so
-- applications writing the table need no rights on rota's schema; every
-- name in it is qualified, and the search_path is pinned. Fragments:
-- {{function}} its quoted name; {{key}} and {{image}} jsonb expressions over
-- a row aliased r; {{name}}, {{task}}, {{queue}}, {{keyPrefix}} literals.
create or replace function {{function}}() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, pg_temp
as $capture$
declare
  clock timestamptz := {{schema}}.clock_now();
  written bigint;
begin
  if tg_op = 'INSERT' then
    insert into {{schema}}.jobs as j (queue, task, payload, state, run_at, unique_key, created_at)
    select {{queue}}, {{task}},
           jsonb_build_object('capture', {{name}}, 'op', 'insert', 'key', c.key, 'row', c.image),
           'available', clock, {{keyPrefix}} || c.key::text, clock
    from (select distinct on (key) {{key}} as key, {{image}} as image from rota_new as r) as c
    on conflict (unique_key) where unique_key is not null and state in ('scheduled', 'available')
    do update set payload = excluded.payload, task = excluded.task, queue = excluded.queue;
  elsif tg_op = 'UPDATE' then
    insert into {{schema}}.jobs as j (queue, task, payload, state, run_at, unique_key, created_at)
    select {{queue}}, {{task}},
           jsonb_build_object('capture', {{name}}, 'op', c.op, 'key', c.key, 'row', c.image),
           'available', clock, {{keyPrefix}} || c.key::text, clock
    from (
      select distinct on (coalesce(n.key, o.key))
             case when o.key is null then 'insert' when n.key is null then 'delete'
                  else 'update' end as op,
             coalesce(n.key, o.key) as key, coalesce(n.image, o.image) as image
      from (select {{key}} as key, {{image}} as image from rota_new as r) as n
      full join (select {{key}} as key, {{image}} as image from rota_old as r) as o
        on o.key = n.key
      where n.image is distinct from o.image or n.key is null or o.key is null
    ) as c
    on conflict (unique_key) where unique_key is not null and state in ('scheduled', 'available')
    do update set payload = excluded.payload, task = excluded.task, queue = excluded.queue;
  else
    insert into {{schema}}.jobs as j (queue, task, payload, state, run_at, unique_key, created_at)
    select {{queue}}, {{task}},
           jsonb_build_object('capture', {{name}}, 'op', 'delete', 'key', c.key, 'row', c.image),
           'available', clock, {{keyPrefix}} || c.key::text, clock
    from (select distinct on (key) {{key}} as key, {{image}} as image from rota_old as r) as c
    on conflict (unique_key) where unique_key is not null and state in ('scheduled', 'available')
    do update set payload = excluded.payload, task = excluded.task, queue = excluded.queue;
  end if;
  -- One wake-up per statement, delivered when the transaction commits.
  get diagnostics written = row_count;
  if written > 0 then
    perform {{schema}}.notify_jobs(array[{{queue}}]);
  end if;
  return null;
end
$capture$;

-- name: RevokeFunction
-- Nobody calls a trigger function directly (PostgreSQL refuses outside a
-- trigger), but a SECURITY DEFINER function is kept from PUBLIC all the same.
revoke all on function {{function}}() from public;

-- name: CreateTrigger
-- One statement-level trigger for one event. A trigger with transition
-- tables may have one event and no column list (PostgreSQL's rule), hence
-- one per event, and an UPDATE trigger that fires for every column: the
-- function compares the captured columns itself. {{transitions}} is
-- "new table as rota_new", "old table as rota_old" or both.
create trigger {{trigger}} after {{event}} on {{table}}
  referencing {{transitions}}
  for each statement execute function {{function}}();

-- name: DropFunction
-- Drops capture's function and, by their dependency on it, every trigger
-- that calls it, whatever table it is on and whatever it is now named: rota
-- leaves no trigger behind.
drop function if exists {{function}}() cascade;
