-- Change capture (docs/capture.md): what `rota.capture.add` installed on a
-- user's table, so rota can list, check and remove it without the code that
-- added it, and never leaves a trigger behind on a table it no longer knows.
--
-- Each capture owns one trigger function, {{schema}}."capture_<name>"
-- (generated per capture from captures.sql, SECURITY DEFINER), and one
-- statement-level AFTER trigger per event on the table, named
-- rota_capture_<name>_<event>. The function enqueues one job per changed row
-- key in the changing statement's own transaction, coalesced on the jobs'
-- unique_key 'capture:<name>:<key as jsonb text>' (migration 0008).
--
-- The function is found again by its name, and its triggers by their
-- dependency on it (pg_trigger.tgfoid): a trigger renamed by hand is still
-- rota's, and dropping the function (with cascade) drops every trigger that
-- calls it, wherever it is.
create table {{schema}}.captures (
  -- Lower-case, so the function and trigger names need no care in psql; at
  -- most 40 characters, so rota_capture_<name>_<event> fits PostgreSQL's
  -- 63-byte identifiers. No ":", which separates the name from the key in
  -- unique_key.
  name text primary key
    constraint captures_name_valid check (name ~ '^[a-z][a-z0-9_-]{0,39}$'),
  -- The table as it was resolved when the capture was added.
  table_schema text not null,
  table_name text not null,
  -- The columns whose change (on update) is captured and whose values the
  -- payload carries; null: all of them, and the whole row image.
  columns text[]
    constraint captures_columns_valid check (columns is null or cardinality(columns) >= 1),
  events text[] not null
    constraint captures_events_valid check (
      cardinality(events) >= 1 and events <@ array['insert', 'update', 'delete']),
  task text not null
    constraint captures_task_valid check (task ~ '^[A-Za-z0-9_.:/-]{1,128}$'),
  -- NOT NULL columns that identify a row (the primary key by default).
  key_columns text[] not null
    constraint captures_key_valid check (cardinality(key_columns) >= 1),
  queue text not null
    constraint captures_queue_valid check (queue ~ '^[A-Za-z0-9_.:-]{1,128}$'),
  created_at timestamptz not null default {{schema}}.clock_now(),
  updated_at timestamptz not null default {{schema}}.clock_now()
);
