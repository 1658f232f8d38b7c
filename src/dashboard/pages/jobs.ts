import { html } from "hono/html";
import type { Rota } from "../../client.js";
import { isRotaError, RotaError } from "../../errors.js";
import type { FindJobsFilter } from "../../index.js";
import { JOB_STATES } from "../../queue/job-admin.js";
import {
  actionForm,
  badge,
  formTime,
  type Html,
  page,
  segment,
  time,
  type View,
} from "../layout.js";

/** The filter as the jobs page's query string carries it. */
export interface JobsQuery {
  queue?: string;
  state?: string;
  task?: string;
  from?: string;
  to?: string;
  payload?: string;
  before?: string;
}

/**
 * Jobs, newest first, filtered by queue, state, task, creation time and
 * payload (JSON containment), a page at a time by keyset (`before`): each
 * page is an index walk from its cursor, as fast on page 1,000 as on page 1.
 */
export async function jobsPage(rota: Rota, view: View, query: JobsQuery): Promise<Html> {
  let filter: FindJobsFilter;
  let problem: string | null = null;
  let result: Awaited<ReturnType<Rota["findJobs"]>> | null = null;
  try {
    filter = toFilter(query);
    result = await rota.findJobs(filter);
  } catch (error) {
    if (!isRotaError(error)) throw error;
    problem = error.message;
  }
  const keep = (extra: Record<string, string>) => {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries({ ...query, ...extra })) {
      if (value !== undefined && value !== "" && key !== "before") params.set(key, value);
    }
    if (extra.before) params.set("before", extra.before);
    return `${view.base}/jobs/?${params.toString()}`;
  };
  const controls = html`<form method="get" action="${view.base}/jobs/" class="filters">
<label>Queue <input name="queue" value="${query.queue ?? ""}"></label>
<label>State <select name="state"><option value="">any</option>${JOB_STATES.map(
    (state) => html`<option${query.state === state ? html` selected` : ""}>${state}</option>`,
  )}</select></label>
<label>Task <input name="task" value="${query.task ?? ""}"></label>
<label>Created from <input type="datetime-local" step="1" name="from" value="${query.from ?? ""}"></label>
<label>to <input type="datetime-local" step="1" name="to" value="${query.to ?? ""}"></label>
<label class="wide">Payload contains <input name="payload" placeholder='{"tenant": 42}' value="${query.payload ?? ""}"></label>
<button type="submit">Filter</button>
</form>
${
  query.state === "failed" || query.state === undefined || query.state === ""
    ? actionForm(
        view,
        "jobs/retry-failed",
        "Retry failed jobs of this filter",
        `Retry every failed job${query.queue ? ` of queue ${query.queue}` : ""}${query.task ? ` of task ${query.task}` : ""}${query.from || query.to ? " created in this range" : ""}, with fresh attempts?`,
        {
          queue: query.queue ?? "",
          task: query.task ?? "",
          from: query.from ?? "",
          to: query.to ?? "",
        },
      )
    : ""
}`;
  if (problem !== null || result === null) {
    return page(view, "Jobs", html`<p class="notice failed" role="alert">${problem}</p>`, controls);
  }
  const live = html`
<table class="jobs">
<thead><tr><th class="num">Id</th><th>Queue</th><th>Task</th><th>State</th><th class="num">Attempts</th><th>Run at</th><th>Created</th><th>Finished</th><th>Last error</th></tr></thead>
<tbody>${result.jobs.map(
    (job) => html`<tr>
  <td class="num"><a href="${view.base}/jobs/${segment(job.id)}">${job.id}</a></td>
  <td>${job.queue}</td><td>${job.task}</td><td>${badge(job.state)}</td>
  <td class="num">${job.attempts}/${job.max_attempts}</td>
  <td>${time(job.run_at)}</td><td>${time(job.created_at)}</td><td>${time(job.finished_at)}</td>
  <td class="error">${job.last_error ?? ""}</td>
</tr>`,
  )}</tbody>
</table>
${result.jobs.length === 0 ? html`<p class="none">No job matches${result.scannedTo ? html` among the newest jobs searched (down to id ${result.scannedTo})` : ""}.</p>` : ""}
<nav class="pages">${query.before ? html`<a href="${keep({})}">« Newest</a>` : ""}${
    result.next
      ? html`<a rel="next" href="${keep({ before: result.next })}">Older ›</a>${
          result.scannedTo
            ? html` <span class="hint">(a payload search reads 100,000 jobs a page)</span>`
            : ""
        }`
      : ""
  }</nav>`;
  return page(view, "Jobs", live, controls);
}

/** The query string as findJobs takes it; its checks say what is wrong with a field. */
function toFilter(query: JobsQuery): FindJobsFilter {
  const filter: FindJobsFilter = { limit: 50 };
  if (query.queue) filter.queue = query.queue;
  if (query.state) filter.state = query.state;
  if (query.task) filter.task = query.task;
  if (query.before) filter.before = query.before;
  if (query.from) filter.createdFrom = formTime(query.from, "from");
  if (query.to) filter.createdTo = formTime(query.to, "to");
  if (query.payload) {
    try {
      filter.payload = JSON.parse(query.payload);
    } catch (error) {
      throw new RotaError(
        "INVALID_OPTION",
        `The payload filter must be JSON, such as {"tenant": 42}: ${(error as Error).message}.`,
        { details: { field: "payload" } },
      );
    }
  }
  return filter;
}
