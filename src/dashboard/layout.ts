import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import { RotaError } from "../errors.js";

/** What each page is told about the request it answers. */
export interface View {
  /** Where the dashboard is mounted ("" at the root). */
  base: string;
  /** The token holder's name, shown in the header. */
  actor: string;
  /** Actions are hidden (a read-only token, or a read-only dashboard). */
  readOnly: boolean;
  csrf: string;
  /** The request's path and query, for forms that come back to it. */
  here: string;
  /** What the last action did, or why it failed (from the redirect back). */
  notice: string | null;
  noticeKind: "done" | "failed";
  /** How often the page refreshes its figures; 0: never. */
  refreshMs: number;
}

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

const NAV = [
  ["", "Overview"],
  ["/jobs", "Jobs"],
  ["/schedules", "Schedules"],
] as const;

/**
 * The page shell. Everything from the database goes through `html`, which
 * escapes it; the page has no inline script or style (the CSP forbids
 * both): behaviour comes from /assets/dashboard.js, driven by data-*
 * attributes. The part in #live is what the page refreshes in place.
 */
export function page(view: View, title: string, live: Html, controls: Html = html``): Html {
  const path = view.here.split("?")[0] ?? "";
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${title} · rota</title>
<link rel="stylesheet" href="${view.base}/assets/uplot.css">
<link rel="stylesheet" href="${view.base}/assets/dashboard.css">
<script src="${view.base}/assets/uplot.js" defer></script>
<script src="${view.base}/assets/dashboard.js" defer></script>
</head>
<body data-base="${view.base}">
<header>
  <a class="brand" href="${view.base}/">rota</a>
  <nav>${NAV.map(
    ([href, label]) =>
      html`<a href="${view.base}${href}/"${isCurrent(path, view.base + href) ? html` aria-current="page"` : ""}>${label}</a>`,
  )}</nav>
  <span class="who">${view.actor}${view.readOnly ? " · read-only" : ""}</span>
</header>
<main>
<h1>${title}</h1>
${view.notice === null ? "" : html`<p class="notice ${view.noticeKind}" role="status">${view.notice}</p>`}
${controls}
<div id="live" data-refresh-ms="${view.refreshMs}">${live}</div>
</main>
</body>
</html>`;
}

function isCurrent(path: string, href: string): boolean {
  const normalized = path.endsWith("/") ? path.slice(0, -1) : path;
  if (href === "" || href.endsWith("/")) return normalized === href.replace(/\/$/, "");
  return normalized === href || normalized.startsWith(`${href}/`);
}

/**
 * A POST form for one action: the CSRF token, where to come back to, and
 * the confirmation the client asks for before sending it. Nothing in
 * read-only mode.
 */
export function actionForm(
  view: View,
  action: string,
  label: string,
  confirm: string,
  fields: Record<string, string> = {},
  kind: "" | "danger" = "",
): Html {
  if (view.readOnly) return html``;
  return html`<form method="post" action="${view.base}/actions/${action}" class="action" data-confirm="${confirm}">
<input type="hidden" name="_csrf" value="${view.csrf}">
<input type="hidden" name="back" value="${view.here}">
${Object.entries(fields).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`)}
<button type="submit" class="${kind}">${label}</button>
</form>`;
}

/** A time in UTC, to the second (the whole dashboard shows UTC). */
export function time(at: Date | null | undefined): Html {
  if (!at) return html`<span class="none">—</span>`;
  const iso = at.toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace("T", " ")}Z</time>`;
}

/** A duration for people: 850 ms, 12 s, 4 min, 3 h, 2 d. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const abs = Math.abs(ms);
  if (abs < 1_000) return `${Math.round(ms)} ms`;
  if (abs < 60_000) return `${Math.round(ms / 1_000)} s`;
  if (abs < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (abs < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}

/** A state as a badge the stylesheet colours. */
export function badge(state: string): Html {
  return html`<span class="badge state-${state.replace(/[^a-z-]/g, "")}">${state}</span>`;
}

/** JSON for people: indented, in a <pre> (escaped like every other value). */
export function jsonBlock(value: unknown): Html {
  return html`<pre class="json">${JSON.stringify(value, null, 2) ?? "null"}</pre>`;
}

/**
 * Data for a chart, in a data-* attribute the client reads with JSON.parse
 * (escaped as any attribute: no script runs from it).
 */
export function chart(kind: string, data: unknown, label: string): Html {
  return html`<figure class="chart" data-chart="${kind}" data-series="${JSON.stringify(data)}" aria-label="${label}"><figcaption>${label}</figcaption></figure>`;
}

/** A URL path segment, encoded. */
export function segment(value: string): string {
  return encodeURIComponent(value);
}

/**
 * A time as the filter forms send it (datetime-local, no zone: read as UTC,
 * the zone the whole dashboard shows); INVALID_OPTION naming `field` when it
 * is not a time.
 */
export function formTime(value: string, field: string): Date {
  const at = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(value) ? value : `${value}Z`);
  if (Number.isNaN(at.getTime())) {
    throw new RotaError("INVALID_OPTION", `${field} is not a date and time: ${value}.`, {
      details: { field, value },
    });
  }
  return at;
}
