-- Reading another scheduler's schedules from its own tables, for
-- `rota schedules import --from pg-boss` (src/schedule/import-pg-boss.ts).
-- {{source}} is the peer's schema, quoted; nothing here writes.

-- name: PgBossTables
-- Whether pg-boss's tables are where the import looks (:schedule and :queue
-- are quoted "schema".table names). The queue table came with pg-boss 10.
select to_regclass(:schedule) is not null as schedule, to_regclass(:queue) is not null as queue;

-- name: PgBossSchedules
-- Every schedule as a JSON row, so the columns of any pg-boss from 10 on are
-- read (key and kind came later), with the retry limit of the queue it sends
-- to: the limit a job gets when its schedule names none.
select to_jsonb(s) as schedule, (to_jsonb(q) ->> 'retry_limit')::int as queue_retry_limit
from {{source}}.schedule s
left join {{source}}.queue q on q.name = s.name
order by s.name, to_jsonb(s) ->> 'key';
