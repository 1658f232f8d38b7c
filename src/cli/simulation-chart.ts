/**
 * `rota simulate --chart`: a simulation drawn as a standalone SVG line chart
 * (or an HTML page holding it and a table of peaks), written by hand so the
 * CLI needs no charting dependency and the file needs no script or network
 * to open. One step line per schedule, executions starting per minute, on
 * UTC time: the herd at 09:00 is a spike, and a window flattens it.
 *
 * Schedule names are escaped wherever they appear: the file is opened in a
 * browser, and a name must never become markup.
 */

import type { Simulation } from "../schedule/simulate.js";
import { MINUTE_MS } from "../schedule/simulate.js";

const WIDTH = 960;
/** The plot alone, or above a zoomed plot (with the gap for its heading between). */
const PLOT_HEIGHT = 340;
const SHARED_HEIGHT = 300;
const ZOOM_HEIGHT = 200;
const PANEL_GAP = 44;
const MARGIN = { left: 78, right: 24, top: 70, bottom: 56 };
const LEGEND_LINE = 22;
/**
 * At most this many steps per line: a longer range draws the busiest
 * minute of each run of minutes, so the peaks stay visible and the file small.
 */
const MAX_STEPS = 720;
// Tableau 10: distinct hues that stay apart for readers with most kinds of colour blindness.
const PALETTE = [
  "#4e79a7",
  "#e15759",
  "#59a14f",
  "#f28e2b",
  "#b07aa1",
  "#76b7b2",
  "#edc948",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];
const TITLE = "Executions starting per minute (UTC)";

/** Text made safe for XML and HTML, in content and in quoted attributes alike. */
export function escapeMarkup(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** The chart as a standalone SVG file. */
export function simulationSvg(simulation: Simulation): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${svgElement(simulation)}\n`;
}

/** The chart in an HTML page, with a table of each schedule's peak. */
export function simulationHtml(simulation: Simulation): string {
  const rows = simulation.schedules.map(
    (s, i) =>
      `<tr><td><span class="swatch" style="background:${colour(i)}"></span>${escapeMarkup(s.name)}</td><td>${formatCount(s.executions)}</td><td>${formatCount(s.peak)}</td><td>${minuteLabel(s.peakMinute)}</td></tr>`,
  );
  const total = simulation.perMinute.reduce((sum, n) => sum + n, 0);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeMarkup(`rota simulate: ${rangeLabel(simulation)}`)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin-top: 16px; }
th, td { padding: 4px 12px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tfoot td { font-weight: 600; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 8px; vertical-align: -1px; }
</style>
</head>
<body>
<h1>${TITLE}</h1>
<p>${escapeMarkup(rangeLabel(simulation))}: ${simulation.schedules.length} schedule(s), as the orchestrator would place them.</p>
${svgElement(simulation)}
<table>
<thead><tr><th>schedule</th><th>executions</th><th>peak / minute</th><th>peak minute (UTC)</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
<tfoot><tr><td>all schedules</td><td>${formatCount(total)}</td><td>${formatCount(simulation.peak)}</td><td>${minuteLabel(simulation.peakMinute)}</td></tr></tfoot>
</table>
</body>
</html>
`;
}

/** A plot of every series on one count scale, `top` px from the top of the chart. */
interface Panel {
  top: number;
  height: number;
  ticks: number[];
  /** A line over the panel (the zoomed panel says what it leaves out). */
  heading: string | null;
}

function svgElement(simulation: Simulation): string {
  const minutes = simulation.perMinute.length;
  const bucket = Math.ceil(minutes / MAX_STEPS);
  const panels = panelsOf(simulation);
  const last = panels[panels.length - 1] as Panel;
  const bottom = last.top + last.height;
  const legendTop = bottom + MARGIN.bottom + 10;
  const height = legendTop + simulation.schedules.length * LEGEND_LINE;
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const x = (minute: number) => MARGIN.left + (minute / minutes) * plotWidth;
  const ticks = timeTicks(simulation.from, minutes);
  const steps = simulation.schedules.map((s) => busiest(s.perMinute, bucket));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}" role="img" aria-labelledby="rota-chart-title" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12" fill="#333">`,
    `<title id="rota-chart-title">${escapeMarkup(`${TITLE}, ${rangeLabel(simulation)}`)}</title>`,
    // An opaque background: the chart stays readable on a dark page.
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="28" font-size="18" font-weight="600" fill="#222">${TITLE}</text>`,
    `<text x="${MARGIN.left}" y="50" fill="#666">${escapeMarkup(subtitle(simulation, bucket))}</text>`,
  ];
  panels.forEach((panel, p) => {
    const yMax = panel.ticks[panel.ticks.length - 1] as number;
    const floor = panel.top + panel.height;
    const y = (value: number) => floor - (Math.min(value, yMax) / yMax) * panel.height;
    if (panel.heading !== null) {
      parts.push(
        `<text x="${MARGIN.left}" y="${panel.top - 10}" fill="#666">${escapeMarkup(panel.heading)}</text>`,
      );
    }
    for (const tick of panel.ticks) {
      parts.push(
        `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${fixed(y(tick))}" y2="${fixed(y(tick))}" stroke="#e5e5e5"/>`,
        `<text x="${MARGIN.left - 8}" y="${fixed(y(tick) + 4)}" text-anchor="end">${formatCount(tick)}</text>`,
      );
    }
    for (const tick of ticks) {
      const at = fixed(x(tick.minute));
      parts.push(`<line x1="${at}" x2="${at}" y1="${floor}" y2="${floor + 5}" stroke="#999"/>`);
      if (panel === last) {
        parts.push(`<text x="${at}" y="${floor + 20}" text-anchor="middle">${tick.label}</text>`);
      }
    }
    parts.push(
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${floor}" y2="${floor}" stroke="#999"/>`,
      `<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${panel.top}" y2="${floor}" stroke="#999"/>`,
      `<text transform="translate(18 ${panel.top + panel.height / 2}) rotate(-90)" text-anchor="middle" fill="#666">${p === 0 ? "executions starting per minute" : "zoomed, per minute"}</text>`,
    );
    // A series past the zoomed scale is drawn flat along its top, not hidden.
    simulation.schedules.forEach((schedule, i) => {
      parts.push(
        `<path d="${stepPath(steps[i] as number[], bucket, x, y)}" fill="none" stroke="${colour(i)}" stroke-width="2" stroke-linejoin="round"><title>${escapeMarkup(schedule.name)}</title></path>`,
      );
    });
  });
  parts.push(
    `<text x="${MARGIN.left + plotWidth / 2}" y="${bottom + 42}" text-anchor="middle" fill="#666">time (UTC)</text>`,
  );
  simulation.schedules.forEach((schedule, i) => {
    const line = legendTop + i * LEGEND_LINE;
    parts.push(
      `<rect x="${MARGIN.left}" y="${line - 10}" width="14" height="4" fill="${colour(i)}"/>`,
      `<text x="${MARGIN.left + 22}" y="${line - 4}"><tspan font-weight="600">${escapeMarkup(schedule.name)}</tspan>: peak ${formatCount(schedule.peak)}/min at ${minuteLabel(schedule.peakMinute)}, ${formatCount(schedule.executions)} executions</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/**
 * One panel on the scale of the highest peak; and, when some schedules peak
 * below a quarter of it (the herd beside the strategies that flatten it), a
 * second panel on their scale, so their shape is seen and not a flat line
 * along zero. The schedules above it are named in its heading.
 */
function panelsOf(simulation: Simulation): Panel[] {
  const peaks = simulation.schedules.map((s) => s.peak);
  const highest = Math.max(1, ...peaks);
  const ticks = countTicks(highest);
  const low = peaks.filter((peak) => peak > 0 && peak * 4 <= highest);
  if (low.length === 0) {
    return [{ top: MARGIN.top, height: PLOT_HEIGHT, ticks, heading: null }];
  }
  const zoomTicks = countTicks(Math.max(...low));
  const scale = zoomTicks[zoomTicks.length - 1] as number;
  const above = simulation.schedules
    .filter((s) => s.peak > scale)
    .map((s) => `${s.name} (${formatCount(s.peak)})`);
  return [
    { top: MARGIN.top, height: SHARED_HEIGHT, ticks, heading: null },
    {
      top: MARGIN.top + SHARED_HEIGHT + PANEL_GAP,
      height: ZOOM_HEIGHT,
      ticks: zoomTicks,
      heading: `Zoomed to 0-${formatCount(scale)} per minute; off this scale: ${above.join(", ")}`,
    },
  ];
}

function subtitle(simulation: Simulation, bucket: number): string {
  const note = bucket > 1 ? `; each step is the busiest minute of ${bucket}` : "";
  return `${rangeLabel(simulation)}, all schedules: peak ${formatCount(simulation.peak)}/min at ${minuteLabel(simulation.peakMinute)}${note}`;
}

function rangeLabel(simulation: Simulation): string {
  return `${utc(simulation.from)} to ${utc(simulation.to)} UTC`;
}

/** "2026-03-02 08:30". */
function utc(at: Date): string {
  return at.toISOString().slice(0, 16).replace("T", " ");
}

/** A minute as "2026-03-02 08:30" (UTC), or "-" for none. */
export function minuteLabel(at: Date | null): string {
  return at === null ? "-" : utc(at);
}

export function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}

function colour(i: number): string {
  return PALETTE[i % PALETTE.length] as string;
}

function fixed(n: number): string {
  return n.toFixed(1);
}

/** The busiest minute of each run of `bucket` minutes. */
function busiest(perMinute: readonly number[], bucket: number): number[] {
  if (bucket === 1) return [...perMinute];
  const out: number[] = [];
  for (let start = 0; start < perMinute.length; start += bucket) {
    out.push(Math.max(...perMinute.slice(start, start + bucket)));
  }
  return out;
}

/** A step line: each count held flat across its minutes (a count is per minute, not a point). */
function stepPath(
  steps: readonly number[],
  bucket: number,
  x: (minute: number) => number,
  y: (value: number) => number,
): string {
  const total = steps.length * bucket;
  let d = `M${fixed(x(0))} ${fixed(y(steps[0] ?? 0))}`;
  steps.forEach((value, i) => {
    if (i > 0) d += `V${fixed(y(value))}`;
    d += `H${fixed(x(Math.min(total, (i + 1) * bucket)))}`;
  });
  return d;
}

/** Round y-axis ticks from 0 past `max`: steps of 1, 2 or 5 × 10^k, at most 6 of them. */
function countTicks(max: number): number[] {
  const magnitude = 10 ** Math.floor(Math.log10(max));
  const step =
    [1, 2, 5, 10, 20, 50, 100]
      .map((m) => (m * magnitude) / 10)
      .find((s) => s >= 1 && Math.ceil(max / s) <= 5) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let at = 0; at < max + step; at += step) ticks.push(at);
  return ticks;
}

/** Minutes between time labels, the first that keeps at most 8 of them. */
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1_440, 2_880, 10_080];

function timeTicks(from: Date, minutes: number): { minute: number; label: string }[] {
  const step = TIME_STEPS.find((s) => minutes / s <= 8) ?? 10_080;
  const fromMinute = from.getTime() / MINUTE_MS;
  // Labels on round UTC times (09:00, 09:15), not on from + k × step.
  const first = Math.ceil(fromMinute / step) * step - fromMinute;
  const days =
    minutes > 1_440 ||
    new Date(from.getTime() + minutes * MINUTE_MS - 1).getUTCDate() !== from.getUTCDate();
  const ticks: { minute: number; label: string }[] = [];
  for (let minute = first; minute <= minutes; minute += step) {
    const iso = new Date(from.getTime() + minute * MINUTE_MS).toISOString();
    const label =
      step >= 1_440
        ? iso.slice(5, 10)
        : days
          ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}`
          : iso.slice(11, 16);
    ticks.push({ minute, label });
  }
  return ticks;
}
