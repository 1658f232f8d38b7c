import { html } from "hono/html";
import type { Rota } from "../../client.js";
import type { QueueMinute } from "../../index.js";
import {
  actionForm,
  badge,
  chart,
  duration,
  type Html,
  page,
  segment,
  time,
  type View,
} from "../layout.js";

/** States in the order the queue table shows them. */
const STATE_COLUMNS = ["available", "scheduled", "running", "succeeded", "failed", "cancelled"];

/** Each queue with its counts, the last hour's throughput, the workers seen, the leader. */
export async function overviewPage(rota: Rota, view: View): Promise<Html> {
  const [now, queues, minutes, workers, diagnosis] = await Promise.all([
    rota.clock.now(),
    rota.queues.list(),
    rota.queues.throughput({ minutes: 60 }),
    rota.workers.list({ seenWithinMs: 5 * 60_000 }),
    rota.diagnose(),
  ]);
  const leader = diagnosis.leader;
  const live = html`
<section class="cards">
  <div class="card"><h2>Leader</h2>${
    leader
      ? html`<p class="big">${leader.holder}</p><p>epoch ${leader.epoch} · lease ${leader.valid ? "valid until" : "expired at"} ${time(leader.expiresAt)}</p>`
      : html`<p class="big none">none</p><p>no orchestrator has led yet</p>`
  }</div>
  <div class="card"><h2>Workers</h2><p class="big">${workers.filter((w) => w.stoppedAt === null).length}</p><p>running, seen in the last 5 min</p></div>
  <div class="card"><h2>Queues</h2><p class="big">${queues.length}</p><p>${queues.filter((q) => q.paused).length} paused</p></div>
</section>
<section>
<h2>Throughput, last hour</h2>
${chart("throughput", throughputSeries(minutes, now), "Jobs finished per minute, all queues")}
</section>
<section>
<h2>Queues</h2>
<table class="queues">
<thead><tr><th>Queue</th><th>Status</th><th>Limit</th>${STATE_COLUMNS.map((s) => html`<th class="num">${s}</th>`)}<th>Oldest waiting</th><th></th></tr></thead>
<tbody>${queues.map(
    (queue) => html`<tr data-queue="${queue.name}">
  <td><a href="${view.base}/jobs/?queue=${segment(queue.name)}">${queue.name}</a></td>
  <td>${queue.paused ? badge("paused") : badge("active")}</td>
  <td class="num">${queue.limit ?? "—"}${queue.waitingForLimit > 0 ? html` <span class="hint">(${queue.waitingForLimit} held)</span>` : ""}</td>
  ${STATE_COLUMNS.map(
    (state) =>
      html`<td class="num"><a href="${view.base}/jobs/?queue=${segment(queue.name)}&amp;state=${state}">${queue.counts[state] ?? 0}</a></td>`,
  )}
  <td>${duration(queue.oldestAvailableMs)}</td>
  <td>${
    queue.paused
      ? actionForm(
          view,
          `queues/${segment(queue.name)}/resume`,
          "Resume",
          `Resume queue ${queue.name}? Workers claim from it again at once.`,
        )
      : actionForm(
          view,
          `queues/${segment(queue.name)}/pause`,
          "Pause",
          `Pause queue ${queue.name}? Nothing of it is claimed until it is resumed.`,
          {},
          "danger",
        )
  }</td>
</tr>`,
  )}</tbody>
</table>
${queues.length === 0 ? html`<p class="none">No queue has jobs or settings yet.</p>` : ""}
</section>
<section>
<h2>Workers seen in the last 5 minutes</h2>
<table class="workers">
<thead><tr><th>Worker</th><th>Host</th><th>Queues</th><th class="num">Concurrency</th><th class="num">Running</th><th>Started</th><th>Last seen</th></tr></thead>
<tbody>${workers.map(
    (worker) => html`<tr>
  <td>${worker.id}${worker.stoppedAt ? html` ${badge("stopped")}` : ""}</td>
  <td>${worker.host} (pid ${worker.pid})</td>
  <td>${worker.queues.join(", ")}</td>
  <td class="num">${worker.concurrency}</td>
  <td class="num">${worker.running}</td>
  <td>${time(worker.startedAt)}</td>
  <td>${time(worker.lastSeenAt)}</td>
</tr>`,
  )}</tbody>
</table>
${workers.length === 0 ? html`<p class="none">No worker has reported in the last 5 minutes.</p>` : ""}
</section>`;
  return page(view, "Overview", live);
}

/**
 * The last hour to `at` (the database clock), minute by minute, summed over queues: x in seconds (as
 * uPlot takes it), then succeeded and failed (retries and cancels are in
 * the queue minutes too, not charted here).
 */
function throughputSeries(minutes: readonly QueueMinute[], at: Date): number[][] {
  const now = Math.floor(at.getTime() / 60_000) * 60;
  const xs: number[] = [];
  for (let i = 59; i >= 0; i--) xs.push(now - i * 60);
  const index = new Map(xs.map((x, i) => [x, i]));
  const succeeded = xs.map(() => 0);
  const failed = xs.map(() => 0);
  for (const m of minutes) {
    const i = index.get(Math.floor(m.minute.getTime() / 1_000));
    if (i === undefined) continue;
    succeeded[i] = (succeeded[i] ?? 0) + m.succeeded;
    failed[i] = (failed[i] ?? 0) + m.failed;
  }
  return [xs, succeeded, failed];
}
