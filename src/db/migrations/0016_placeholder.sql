-- Placeholder: migration 0016 is being written on another branch (issue 12
-- lands in parallel: enqueue from SQL, batches), and change capture took
-- 0017. The runner applies migrations one number after another, so this
-- empty step keeps the numbers contiguous until the real 0016 is merged.
-- Delete this file in that merge (the loader refuses two migrations with
-- one number). A schema migrated while it existed has recorded 0016 as
-- applied: rebuild such a development schema after the merge.
select 1;
