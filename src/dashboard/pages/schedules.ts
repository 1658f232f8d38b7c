import { html } from "hono/html";
import type { Rota } from "../../client.js";
import { isRotaError } from "../../errors.js";
import type { Schedule } from "../../index.js";
import {
  actionForm,
  badge,
  chart,
  duration,
  type Html,
  jsonBlock,
  page,
  segment,
  time,
  type View,
} from "../layout.js";

/** The planned runs the timeline draws at most (the next cadence of up to this many targets). */
const TIMELINE_RUNS = 2_000;

/** A schedule's spec as people read it. */
function spec(s: Pick<Schedule, "cron" | "every" | "timezone">): string {
  return s.cron !== null ? `cron ${s.cron} (${s.timezone})` : `every ${s.every}`;
}

function status(s: Pick<Schedule, "enabled" | "paused" | "owner">): Html {
  if (!s.enabled) return badge("disabled");
  if (s.paused) return badge("paused");
  if (s.owner !== "rota") return badge(s.owner);
  return badge("active");
}

/** Every schedule: spec, next run, state, owner, last error (why a disabled one is). */
export async function schedulesPage(rota: Rota, view: View): Promise<Html> {
  const schedules = await rota.schedules.list({ limit: 1_000 });
  const live = html`
<table class="schedules">
<thead><tr><th>Name</th><th>Task</th><th>Spec</th><th>Status</th><th>Targets</th><th>Next run</th><th>Last run</th><th>Last error</th></tr></thead>
<tbody>${schedules.map(
    (s) => html`<tr>
  <td><a href="${view.base}/schedules/${segment(s.name)}">${s.name}</a></td>
  <td>${s.task} <span class="hint">(${s.queue})</span></td>
  <td>${spec(s)}</td>
  <td>${status(s)}</td>
  <td>${s.fanOut ? html`fan-out${s.effectiveWindowMs ? html` over ${duration(s.effectiveWindowMs)}` : ""}, ${s.distribution}` : "—"}</td>
  <td>${time(s.nextPlannedAt)}</td>
  <td>${time(s.lastRunAt)}</td>
  <td class="error">${s.lastError ?? ""}</td>
</tr>`,
  )}</tbody>
</table>
${schedules.length === 0 ? html`<p class="none">No schedule yet.</p>` : ""}`;
  return page(view, "Schedules", live);
}

/**
 * One schedule: its settings, actions, upcoming runs (each skippable),
 * history, and for a schedule with targets the timeline of its next cadence
 * with the load per minute, and a lookup of one target's next runs.
 */
export async function schedulePage(
  rota: Rota,
  view: View,
  name: string,
  lookup: string | undefined,
): Promise<Html | null> {
  let schedule: Schedule | null;
  try {
    schedule = await rota.schedules.get(name);
  } catch (error) {
    if (isRotaError(error) && error.code === "INVALID_SCHEDULE_NAME") return null;
    throw error;
  }
  if (schedule === null) return null;
  const s = schedule;
  const targets = s.fanOut ? await rota.schedules.targets.count(s.name) : 0;
  const [upcoming, history, plan, lookedUp] = await Promise.all([
    rota.schedules.upcoming(s.name, {
      limit: s.fanOut ? Math.min(TIMELINE_RUNS, Math.max(targets, 1)) : 10,
    }),
    rota.schedules.history(s.name, { limit: 20 }),
    s.fanOut && targets > 0 ? rota.schedules.plan(s.name) : Promise.resolve(null),
    lookup ? lookupTarget(rota, s.name, lookup) : Promise.resolve(null),
  ]);
  const name64 = segment(s.name);
  const controls = html`<div class="actions">
${actionForm(view, `schedules/${name64}/trigger`, "Trigger now", `Run ${s.name} now, once, besides its planned runs?`)}
${
  s.paused
    ? actionForm(
        view,
        `schedules/${name64}/resume`,
        "Resume",
        `Resume ${s.name}? It plans its next runs again.`,
      )
    : actionForm(
        view,
        `schedules/${name64}/pause`,
        "Pause",
        `Pause ${s.name}? Its planned runs are withdrawn until it is resumed.`,
        {},
        "danger",
      )
}
</div>`;
  const live = html`
<section class="cards">
  <div class="card"><h2>Status</h2><p class="big">${status(s)}</p><p>owner ${s.owner}${s.lastError ? html` · <span class="error">${s.lastError}</span>` : ""}</p></div>
  <div class="card"><h2>Spec</h2><p class="big">${spec(s)}</p><p>task ${s.task} on queue ${s.queue}</p></div>
  <div class="card"><h2>Next run</h2><p class="big">${time(s.nextPlannedAt)}</p><p>last ran ${time(s.lastRunAt)}</p></div>
</section>
<section>
<h2>Policies</h2>
<dl class="details">
  <dt>Catch-up</dt><dd>${s.catchUp}${s.catchUpWindowMs === null ? "" : ` within ${duration(s.catchUpWindowMs)}`}</dd>
  <dt>Overlap</dt><dd>${s.overlap}</dd>
  <dt>Planned ahead</dt><dd>${s.horizon} run(s), at least ${duration(s.horizonMs)}</dd>
  <dt>Max attempts</dt><dd>${s.maxAttempts ?? "the task's"}</dd>
  <dt>Priority</dt><dd>${s.priority}</dd>
  ${
    s.fanOut
      ? html`<dt>Targets</dt><dd>${targets}${s.targetSource ? html` from <code>${s.targetSource}</code>` : ""}</dd>
  <dt>Window</dt><dd>${s.effectiveWindowMs === null ? "none (every target at the occurrence)" : duration(s.effectiveWindowMs)}, ${s.distribution}${s.seed === null ? "" : `, seed ${s.seed}`}</dd>`
      : ""
  }
  <dt>Payload</dt><dd>${jsonBlock(s.payload)}</dd>
</dl>
</section>
${s.fanOut ? timeline(view, s, plan, upcoming, lookup, lookedUp) : ""}
<section>
<h2>Upcoming runs</h2>
<table class="upcoming">
<thead><tr><th>Runs at</th><th>Occurrence</th><th>Target</th><th>Offset</th><th>State</th><th></th></tr></thead>
<tbody>${upcoming.slice(0, 20).map(
    (run) => html`<tr>
  <td>${time(run.runAt)}</td><td>${time(run.occurrenceAt)}</td><td>${run.targetKey || "—"}</td>
  <td>${duration(run.offsetMs)}</td><td>${badge(run.state)}</td>
  <td>${
    run.executionId
      ? actionForm(
          view,
          `schedules/${name64}/skip`,
          "Skip",
          `Skip the run of ${s.name} at ${run.runAt.toISOString()}${run.targetKey ? ` for ${run.targetKey}` : ""}?`,
          { executionId: run.executionId },
          "danger",
        )
      : ""
  }</td>
</tr>`,
  )}</tbody>
</table>
${upcoming.length === 0 ? html`<p class="none">Nothing planned: the schedule is paused, disabled or owned elsewhere.</p>` : ""}
</section>
<section>
<h2>History</h2>
<table class="history">
<thead><tr><th>Execution</th><th>Runs at</th><th>Target</th><th>State</th><th class="num">Attempts</th><th>Started</th><th>Finished</th></tr></thead>
<tbody>${history.map(
    (run) => html`<tr>
  <td><a href="${view.base}/jobs/${segment(run.id)}">${run.id}</a></td>
  <td>${time(run.runAt)}</td><td>${run.targetKey || "—"}</td><td>${badge(run.state)}</td>
  <td class="num">${run.attempts}</td><td>${time(run.startedAt)}</td><td>${time(run.finishedAt)}</td>
</tr>`,
  )}</tbody>
</table>
${history.length === 0 ? html`<p class="none">No execution yet.</p>` : ""}
</section>`;
  return page(view, `Schedule ${s.name}`, live, controls);
}

type Upcoming = Awaited<ReturnType<Rota["schedules"]["upcoming"]>>;
type Plan = Awaited<ReturnType<Rota["schedules"]["plan"]>>;

/**
 * The next cadence of a schedule with targets: each planned run as a point
 * (time, target), the runs per minute beneath, and the lookup of one target.
 */
function timeline(
  view: View,
  s: Schedule,
  plan: Plan | null,
  upcoming: Upcoming,
  lookup: string | undefined,
  lookedUp: { runs: Upcoming } | { error: string } | null,
): Html {
  const occurrence = plan?.occurrence.getTime() ?? null;
  const cadence = upcoming.filter((run) => run.occurrenceAt?.getTime() === occurrence);
  // y is the target's place among the keys (sorted), not its place in
  // time: the points show where each target falls in the window.
  const keys = [...new Set(cadence.map((run) => run.targetKey))].sort((a, b) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  const rank = new Map(keys.map((key, i) => [key, i + 1]));
  const byTime = [...cadence].sort((a, b) => a.runAt.getTime() - b.runAt.getTime());
  const points = [
    byTime.map((run) => run.runAt.getTime() / 1_000),
    byTime.map((run) => rank.get(run.targetKey) ?? 0),
  ];
  const load = plan
    ? [plan.perMinute.map((m) => m.minute.getTime() / 1_000), plan.perMinute.map((m) => m.count)]
    : [[], []];
  return html`<section>
<h2>Next cadence${plan ? html`: ${time(plan.occurrence)}, ${plan.targets} target(s) over ${duration(plan.windowMs)}` : ""}</h2>
${
  plan
    ? html`${chart("timeline", points, `Planned runs of the cadence at ${plan.occurrence.toISOString()}: one point per target (by key, sorted), at its time`)}
${chart("load", load, "Runs starting per minute")}
${plan.materialized ? "" : html`<p class="hint">Not written yet: placed as the orchestrator will place it over the current targets.</p>`}`
    : html`<p class="none">No target yet: add some with rota schedules targets add.</p>`
}
<form method="get" action="${view.base}/schedules/${segment(s.name)}" class="filters">
<label>When does target <input name="target" value="${lookup ?? ""}" required></label>
<button type="submit">run next?</button>
</form>
${
  lookedUp === null
    ? ""
    : "error" in lookedUp
      ? html`<p class="notice failed" role="alert">${lookedUp.error}</p>`
      : html`<ul class="lookup">${lookedUp.runs.map(
          (run) =>
            html`<li>${time(run.runAt)} (occurrence ${time(run.occurrenceAt)}, offset ${duration(run.offsetMs)}, ${run.state})</li>`,
        )}</ul>${lookedUp.runs.length === 0 ? html`<p class="none">Nothing planned for it.</p>` : ""}`
}
</section>`;
}

async function lookupTarget(
  rota: Rota,
  name: string,
  target: string,
): Promise<{ runs: Upcoming } | { error: string }> {
  try {
    return { runs: await rota.schedules.upcoming(name, { target, limit: 5 }) };
  } catch (error) {
    if (isRotaError(error)) return { error: error.message };
    throw error;
  }
}
