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
  /** Counts start at zero: a bar cut off at its base misleads. */
  const fromZero = { range: (_u, _min, max) => [0, Math.max(1, max)] };

  const chartOptions = {
    throughput: (width) => ({
      width,
      height: 220,
      scales: { x: { time: true }, y: fromZero },
      series: [
        {},
        { label: "succeeded", stroke: palette.succeeded, width: 2 },
        { label: "failed", stroke: palette.failed, width: 2 },
      ],
      axes: [{}, { label: "jobs / min" }],
    }),
    timeline: (width) => ({
      width,
      height: 260,
      scales: { x: { time: true } },
      cursor: { points: { show: false } },
      series: [
        {},
        {
          label: "planned run (target, by key)",
          stroke: palette.runs,
          paths: () => null,
          points: { show: true, size: 3, fill: palette.runs },
        },
      ],
      axes: [{}, { label: "target" }],
    }),
    load: (width) => ({
      width,
      height: 160,
      scales: { x: { time: true }, y: fromZero },
      series: [
        {},
        {
          label: "runs starting",
          stroke: palette.load,
          fill: "rgba(106, 27, 154, 0.25)",
          paths: window.uPlot?.paths?.bars
            ? window.uPlot.paths.bars({ size: [0.8, 40] })
            : undefined,
        },
      ],
      axes: [{}, { label: "runs / min" }],
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
