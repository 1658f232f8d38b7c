// rota dashboard: confirmations, charts and live figures. No framework, no
// inline script (the Content-Security-Policy forbids it): everything is
// driven by data-* attributes the server writes, escaped.

(() => {
  const charts = [];

  /** Each action form asks before it is sent. */
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  const palette = { succeeded: "#2e7d32", failed: "#c62828", runs: "#1565c0", load: "#6a1b9a" };
  /** Counts start at zero (a bar cut off at its base misleads), with room above the highest. */
  const fromZero = { range: (_u, _min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] };

  // Times in UTC, as every time the pages print ("2026-12-07 16:00:00Z"):
  // a chart in the browser's zone would disagree with the text beside it.
  const pad = (n) => String(n).padStart(2, "0");
  /** A tick: "16:00" on a whole minute, ":30" between (the date is in the heading). */
  const tick = (seconds) => {
    const d = new Date(seconds * 1000);
    return d.getUTCSeconds() === 0
      ? `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`
      : `:${pad(d.getUTCSeconds())}`;
  };
  const utc = (seconds) => window.uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");
  const timeAxis = { values: (_u, splits) => splits.map(tick) };
  const timeLegend = {
    value: (_u, seconds) =>
      seconds == null
        ? "--"
        : `${new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ")}Z`,
  };
  /** A time scale with room on both sides: points and bars at the ends show whole. */
  const paddedTime = (margin) => ({
    time: true,
    range: (_u, min, max) => {
      const room = margin ?? Math.max(1, (max - min) * 0.015);
      return [min - room, max + room];
    },
  });

  const chartOptions = {
    throughput: (width) => ({
      width,
      height: 220,
      tzDate: utc,
      scales: { x: { time: true }, y: fromZero },
      series: [
        timeLegend,
        { label: "succeeded", stroke: palette.succeeded, width: 2 },
        { label: "failed", stroke: palette.failed, width: 2 },
      ],
      axes: [timeAxis, { label: "jobs / min" }],
    }),
    timeline: (width) => ({
      width,
      height: 260,
      tzDate: utc,
      scales: { x: paddedTime() },
      cursor: { points: { show: false } },
      series: [
        timeLegend,
        {
          label: "planned run (target, by key)",
          stroke: palette.runs,
          paths: () => null,
          points: { show: true, size: 3, fill: palette.runs },
        },
      ],
      axes: [timeAxis, { label: "target" }],
    }),
    load: (width) => ({
      width,
      height: 160,
      tzDate: utc,
      // Half a minute each side: the first and last minutes' bars show whole.
      scales: { x: paddedTime(30), y: fromZero },
      series: [
        timeLegend,
        {
          label: "runs starting",
          stroke: palette.load,
          fill: "rgba(106, 27, 154, 0.25)",
          paths: window.uPlot?.paths?.bars
            ? window.uPlot.paths.bars({ size: [0.8, 40] })
            : undefined,
        },
      ],
      axes: [timeAxis, { label: "runs / min" }],
    }),
  };

  function drawCharts(root) {
    while (charts.length > 0) charts.pop().destroy();
    if (typeof window.uPlot !== "function") return;
    for (const figure of root.querySelectorAll("figure[data-chart]")) {
      const make = chartOptions[figure.dataset.chart];
      if (!make) continue;
      let data;
      try {
        data = JSON.parse(figure.dataset.series || "[]");
      } catch {
        continue;
      }
      const width = Math.max(320, figure.clientWidth || 800);
      const plot = new window.uPlot(make(width), data, figure);
      figure.dataset.drawn = String(data[0]?.length ?? 0);
      charts.push(plot);
    }
  }

  /** Whether the user is in the middle of something the refresh would disturb. */
  function busy(live) {
    const active = document.activeElement;
    return active !== null && active !== document.body && live.contains(active);
  }

  async function refresh(live) {
    if (document.hidden || busy(live)) return;
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin",
        headers: { "X-Rota-Live": "1" },
      });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("live");
      if (fresh === null || busy(live)) return;
      // Copied out first: moving a node out of the parsed document shortens
      // its live childNodes list, which a mapping walk would skip along.
      live.replaceChildren(...Array.from(fresh.childNodes));
      live.dataset.refreshedAt = new Date().toISOString();
      drawCharts(live);
    } catch {
      // The server is restarting or the network is gone: try again next time.
    }
  }

  window.addEventListener("DOMContentLoaded", () => {
    const live = document.getElementById("live");
    if (live === null) return;
    drawCharts(live);
    const every = Number(live.dataset.refreshMs || "0");
    if (every > 0) window.setInterval(() => void refresh(live), every);
  });
})();
