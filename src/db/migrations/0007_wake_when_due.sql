-- Wake-ups that say when a queue's new jobs come due. A statement that
-- writes only jobs due later (a delayed enqueue, a retry, the scheduler's
-- planned executions) used to wake the workers of their queues at once: an
-- idle worker then claimed, found nothing due, and asked when the next job
-- would be (NextDue), two statements per wake-up for nothing. Now such a
-- wake-up reads "<queue> +<ms>", the milliseconds until the earliest of
-- them is due by the database clock, and an idle worker sets its timer
-- instead. A queue with a job due now is woken as before ("<queue>").
--
-- Workers older than this read "<queue> +<ms>" as a queue they do not serve
-- and find those jobs at their next poll: upgrade workers first.
create function {{schema}}.notify_due(queues text[], due_in_ms double precision[]) returns void
  language plpgsql volatile
as $$
begin
  perform pg_notify({{channel:jobs}},
                    case when coalesce(min(w.due_in_ms), 0) <= 0 then w.queue
                         else w.queue || ' +' || ceil(min(w.due_in_ms))::bigint end)
  from unnest(queues, due_in_ms) as w(queue, due_in_ms)
  group by w.queue;
end
$$;
