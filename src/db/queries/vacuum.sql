-- What vacuum has left to do on rota's tables, and what holds it back: the
-- warnings of diagnose() (src/vacuum-health.ts, printed by `rota doctor`),
-- and the per-minute table figures of the soak (bench/soak/).
--
-- Every finished or claimed job leaves dead rows behind (a claim and an
-- outcome are updates, a succeeded job without a retention and a pruned one
-- are deletes), so the jobs table depends on vacuum more than most tables.
-- Counts are the statistics system's estimates (pg_stat_user_tables), sent
-- by each backend at most once a second; they are cast to float8 so they
-- reach JavaScript as numbers.

-- name: Autovacuum
-- Whether autovacuum runs at all on this server, and where that was set
-- (sourcefile is null unless the role may read the server's settings).
select current_setting('autovacuum')::bool as autovacuum,
       current_setting('track_counts')::bool as track_counts,
       (select sourcefile from pg_settings where name = 'autovacuum') as source_file;

-- name: TableHealth
-- Each table of schema :schema: live and dead rows, sizes (the whole table
-- with its indexes and TOAST, and its indexes alone), its vacuum history, and
-- the dead rows at which autovacuum takes it up: autovacuum_vacuum_threshold
-- + autovacuum_vacuum_scale_factor × reltuples, each from the table's own
-- storage parameters when a migration set them, else the server's.
-- reltuples is -1 for a table never vacuumed or analyzed; autovacuum counts
-- that as 0 rows, and so does this.
select s.relname as table_name,
       s.n_live_tup::float8 as live_tuples,
       s.n_dead_tup::float8 as dead_tuples,
       pg_total_relation_size(c.oid)::float8 as total_bytes,
       pg_indexes_size(c.oid)::float8 as index_bytes,
       s.autovacuum_count::float8 as autovacuum_count,
       s.vacuum_count::float8 as vacuum_count,
       greatest(s.last_vacuum, s.last_autovacuum) as last_vacuum_at,
       (extract(epoch from clock_timestamp() - greatest(s.last_vacuum, s.last_autovacuum))
        * 1000)::float8 as since_vacuum_ms,
       coalesce(o.enabled::bool, true) as autovacuum_enabled,
       coalesce(o.threshold::float8, current_setting('autovacuum_vacuum_threshold')::float8)
         + coalesce(o.scale_factor::float8, current_setting('autovacuum_vacuum_scale_factor')::float8)
           * greatest(c.reltuples, 0)::float8 as vacuum_trigger
from pg_stat_user_tables as s
join pg_class as c on c.oid = s.relid
cross join lateral (
  select max(option_value) filter (where option_name = 'autovacuum_enabled') as enabled,
         max(option_value) filter (where option_name = 'autovacuum_vacuum_threshold') as threshold,
         max(option_value) filter (where option_name = 'autovacuum_vacuum_scale_factor') as scale_factor
  from pg_options_to_table(c.reloptions)
) as o
where s.schemaname = :schema
order by s.relname;

-- name: OldTransactions
-- Client transactions of this database (vacuum of a table is held back only
-- by its own database's) open for at least :olderThanMs ms, idle in
-- transaction included, oldest first. One that holds a transaction id or a
-- snapshot (backend_xid, backend_xmin) keeps vacuum from removing any row
-- that died after it began, in every table; one that holds neither (an idle
-- READ COMMITTED transaction that wrote nothing) only holds its locks.
-- Other roles' sessions show their times only to a member of
-- pg_read_all_stats (or a superuser): theirs are left out otherwise.
select pid,
       usename as user_name,
       application_name,
       state,
       xact_start,
       (extract(epoch from clock_timestamp() - xact_start) * 1000)::float8 as age_ms,
       backend_xid is not null or backend_xmin is not null as holds_xmin,
       left(query, 200) as query
from pg_stat_activity
where datname = current_database()
  and backend_type = 'client backend'
  and pid <> pg_backend_pid()
  and xact_start <= clock_timestamp() - make_interval(secs => :olderThanMs::double precision / 1000)
order by xact_start
limit 20;

-- name: XminHolders
-- What holds vacuum back besides sessions: replication slots that keep an
-- xmin while no standby is attached (an abandoned standby's slot holds it
-- for good; a logical slot's catalog_xmin holds back only the catalogs), and
-- prepared transactions (two-phase commit) waiting at least :olderThanMs ms
-- for their COMMIT PREPARED or ROLLBACK PREPARED.
select 'replication slot' as kind,
       slot_name::text as name,
       age(xmin)::float8 as xid_age,
       null::float8 as age_ms
from pg_replication_slots
where xmin is not null and not active
  and (database is null or database = current_database())
union all
select 'prepared transaction',
       gid,
       age(transaction)::float8,
       (extract(epoch from clock_timestamp() - prepared) * 1000)::float8
from pg_prepared_xacts
where database = current_database()
  and prepared <= clock_timestamp() - make_interval(secs => :olderThanMs::double precision / 1000)
order by 3 desc;
