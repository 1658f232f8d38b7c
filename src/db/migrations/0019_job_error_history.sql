-- Each job's failed attempts, not only its last (the dashboard shows every
-- error with its stack). Written only on the failure paths (a failed
-- attempt, a rescue), never on a claim or a success, and capped at the last
-- 20 so a job retried for days does not grow without bound. Nullable with
-- no default: adding it rewrites nothing.
alter table {{schema}}.jobs add column error_history jsonb;

-- The history with `error` appended, keeping the last 20.
create function {{schema}}.append_error(history jsonb, error jsonb) returns jsonb
language sql immutable parallel safe as $$
  select case when jsonb_array_length(coalesce(history, '[]')) >= 20
              then (coalesce(history, '[]') - 0) || jsonb_build_array(error)
              else coalesce(history, '[]') || jsonb_build_array(error) end
$$;
