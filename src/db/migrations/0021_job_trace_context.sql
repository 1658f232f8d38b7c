-- The trace context of the enqueue that made a job (docs/telemetry.md): the
-- W3C trace context of its "send" span, {"traceparent": "00-…", "tracestate":
-- "…"} (tracestate only when there is one), which each "process" span of the
-- job links to. Written only by a Rota with telemetry on; null otherwise, and
-- for jobs enqueued from SQL, by a trigger or planned by a schedule. It stays
-- through retries, rescues and replays, so every attempt links to the same
-- enqueue. Nullable with no default: adding it rewrites nothing, and a job
-- without one pays no bytes for it (a null takes only its bit in the row's
-- null bitmap).
alter table {{schema}}.jobs add column trace_context jsonb;
