-- Reserved: version 15 belongs to a migration written on another branch at
-- the same time as 0016 (batches). The runner applies versions one after
-- another without gaps, so this branch holds the number with a migration
-- that changes nothing. When the real 0015 is merged, delete this file: two
-- files numbered 0015 make the runner refuse to load (loadMigrations).
select 1;
