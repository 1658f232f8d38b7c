import { html } from "hono/html";
import type { Rota } from "../../client.js";
import {
  actionForm,
  badge,
  duration,
  type Html,
  jsonBlock,
  page,
  segment,
  time,
  type View,
} from "../layout.js";

/** States a job can be retried from (retryJob), and cancelled from (cancel). */
const RETRYABLE = new Set(["failed", "cancelled"]);
const CANCELLABLE = new Set(["scheduled", "available", "running"]);

/** One job: payload, attempts, its error with the stack, timings, keys, and its actions. */
export async function jobPage(rota: Rota, view: View, id: string): Promise<Html | null> {
  if (!/^[1-9][0-9]{0,18}$/.test(id)) return null;
  const job = await rota.getJob(id);
  if (job === null) return null;
  // Both times are the database's, read by two transactions: a job claimed
  // the moment it came due can show a start a millisecond before it.
  const waitedMs =
    job.started_at === null ? null : Math.max(0, job.started_at.getTime() - job.run_at.getTime());
  const ranMs =
    job.started_at === null || job.finished_at === null
      ? null
      : job.finished_at.getTime() - job.started_at.getTime();
  const actions = html`<div class="actions">${
    RETRYABLE.has(job.state)
      ? actionForm(
          view,
          `jobs/${segment(job.id)}/retry`,
          "Retry",
          `Retry job ${job.id} with fresh attempts?`,
        )
      : ""
  }${
    CANCELLABLE.has(job.state)
      ? actionForm(
          view,
          `jobs/${segment(job.id)}/cancel`,
          "Cancel",
          `Cancel job ${job.id}?${job.state === "running" ? " Its handler's signal is aborted." : ""}`,
          {},
          "danger",
        )
      : ""
  }</div>`;
  const live = html`
<section class="cards">
  <div class="card"><h2>State</h2><p class="big">${badge(job.state)}</p><p>attempt ${job.attempts} of ${job.max_attempts}</p></div>
  <div class="card"><h2>Queue</h2><p class="big"><a href="${view.base}/jobs/?queue=${segment(job.queue)}">${job.queue}</a></p><p>task ${job.task} · priority ${job.priority}</p></div>
  <div class="card"><h2>Timing</h2><p>waited ${duration(waitedMs)} after its run time; ran ${duration(ranMs)}</p></div>
</section>
${actions}
<section>
<h2>Details</h2>
<dl class="details">
  <dt>Id</dt><dd>${job.id}</dd>
  <dt>Created</dt><dd>${time(job.created_at)}</dd>
  <dt>Run at</dt><dd>${time(job.run_at)}</dd>
  <dt>Started</dt><dd>${time(job.started_at)}</dd>
  <dt>Finished</dt><dd>${time(job.finished_at)}</dd>
  <dt>Lease</dt><dd>${job.lease_holder ? html`${job.lease_holder} until ${time(job.lease_expires_at)}` : "—"}</dd>
  <dt>Unique key</dt><dd>${job.unique_key ?? "—"}</dd>
  <dt>Concurrency key</dt><dd>${job.concurrency_key ?? "—"}${job.concurrency_limit === null ? "" : ` (limit ${job.concurrency_limit})`}</dd>
  <dt>Timeout</dt><dd>${job.timeout_ms === null ? "—" : duration(job.timeout_ms)}</dd>
  <dt>Cancel requested</dt><dd>${time(job.cancel_requested_at)}</dd>
  <dt>Schedule</dt><dd>${
    job.schedule_id === null
      ? "—"
      : html`execution of schedule ${job.schedule_id}${job.target_key ? html`, target ${job.target_key}` : ""}, occurrence ${time(job.occurrence_at)}`
  }</dd>
  <dt>Batch</dt><dd>${job.batch_id ?? "—"}</dd>
</dl>
</section>
<section>
<h2>Payload</h2>
${jsonBlock(job.payload)}
</section>
<section>
<h2>Errors</h2>
${
  job.errors.length === 0
    ? html`<p class="none">No attempt has failed.</p>`
    : job.errors.map(
        (error) => html`<article class="error-entry">
<h3>Attempt ${error.attempt ?? "?"}${error.at ? html` · ${time(new Date(error.at))}` : ""}${error.worker ? html` · ${error.worker}` : ""}</h3>
<p class="error">${error.message}</p>
${error.stack ? html`<pre class="stack">${error.stack}</pre>` : ""}
</article>`,
      )
}
</section>`;
  return page(view, `Job ${job.id}`, live);
}
