import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";

/**
 * `rota simulate` as a user runs it: no database (runCli leaves
 * DATABASE_URL out), a file of schedules, counts as JSON or a summary, and
 * a chart a browser opens.
 */

let dir: string;
const from = "2026-03-02T08:30:00Z";
const to = "2026-03-02T10:30:00Z";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "rota-simulate-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function file(name: string, content: unknown): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

/** rota simulate --file input over the range, with more flags. */
const simulateCli = (input: string, ...flags: string[]) =>
  runCli(["simulate", "--file", input, "--from", from, "--to", to, ...flags]);

const herd = [
  { name: "scan.herd", task: "scan", cron: "0 9 * * *", targets: 1_000 },
  {
    name: "scan.spread",
    task: "scan",
    cron: "0 9 * * *",
    window: "1h",
    distribution: "spread",
    targets: 1_000,
  },
];

describe("rota simulate", () => {
  it("--json: every minute of the range, the peak, and each schedule's", async () => {
    const input = await file("herd.json", herd);
    const result = await simulateCli(input, "--json");
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout);
    expect(Object.keys(out).sort()).toEqual(["peak", "peak_minute", "per_minute", "schedules"]);
    expect(out.per_minute).toHaveLength(120);
    expect(out.per_minute[0]).toEqual({ minute: "2026-03-02T08:30:00.000Z", count: 0 });
    expect(out.per_minute[119].minute).toBe("2026-03-02T10:29:00.000Z");
    // 1,000 over 60 minutes is 16.7 a minute: 17 in the first.
    expect(out.per_minute[30]).toEqual({ minute: "2026-03-02T09:00:00.000Z", count: 1_017 });
    expect(out.peak).toBe(1_017);
    expect(out.peak_minute).toBe("2026-03-02T09:00:00.000Z");
    expect(out.schedules).toEqual([
      {
        name: "scan.herd",
        executions: 1_000,
        peak: 1_000,
        peak_minute: "2026-03-02T09:00:00.000Z",
      },
      { name: "scan.spread", executions: 1_000, peak: 17, peak_minute: "2026-03-02T09:00:00.000Z" },
    ]);
    const total = out.per_minute.reduce((sum: number, m: { count: number }) => sum + m.count, 0);
    expect(total).toBe(2_000);
  });

  it("without --json: a short summary with each schedule's peak", async () => {
    const input = await file("summary.json", herd);
    const result = await simulateCli(input);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("peak 1,017/min at 2026-03-02 09:00 UTC");
    expect(result.stdout).toMatch(/scan\.herd\s+1,000\s+1,000\s+2026-03-02 09:00/);
    expect(result.stdout).toMatch(/scan\.spread\s+1,000\s+17\s+2026-03-02 09:00/);
  });

  it("--chart FILE.svg and FILE.html: a chart with each schedule named", async () => {
    const input = await file("chart.json", herd);
    const svgPath = join(dir, "load.svg");
    const htmlPath = join(dir, "load.html");
    for (const chart of [svgPath, htmlPath]) {
      const result = await simulateCli(input, "--chart", chart);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toContain(`chart written to ${chart}`);
    }
    const svg = await readFile(svgPath, "utf8");
    expect(
      svg.startsWith(
        '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"',
      ),
    ).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(svg).toContain(">scan.herd</tspan>");
    expect(svg).toContain(">scan.spread</tspan>");
    expect(svg).toContain(">09:00</text>");
    const html = await readFile(htmlPath, "utf8");
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain("<svg xmlns=");
    expect(html).not.toContain("<script");
    expect(html).toMatch(/scan\.spread<\/td><td>1,000<\/td><td>17<\/td>/);
  });

  it("a name that is markup never reaches the chart: the file is refused", async () => {
    const input = await file("script.json", [{ ...herd[0], name: "<script>alert(1)</script>" }]);
    const chart = join(dir, "never.svg");
    const result = await simulateCli(input, "--chart", chart);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("[INVALID_SCHEDULE_NAME]");
    await expect(readFile(chart, "utf8")).rejects.toThrow(/ENOENT/);
  });

  it("a bad file: exit 1 with the error's code, naming the entry", async () => {
    const cases: [unknown, string, string][] = [
      [[herd[0], { ...herd[1], cron: "0 25 * * *" }], "INVALID_CRON", 'entry 2 ("scan.spread")'],
      [[{ ...herd[1], distribution: "mine" }], "DISTRIBUTION_NOT_REGISTERED", "cannot register"],
      ["[{", "INVALID_OPTION", "is not JSON"],
      [[{ ...herd[0], targets: -1 }], "INVALID_OPTION", "entry 1"],
    ];
    for (const [content, code, text] of cases) {
      const input = await file("bad.json", content);
      const json = await simulateCli(input, "--json");
      expect(json.code).toBe(1);
      const body = JSON.parse(json.stdout);
      expect(body.error.code).toBe(code);
      expect(body.error.message).toContain(text);
      const plain = await simulateCli(input);
      expect(plain.code).toBe(1);
      expect(plain.stderr).toContain(`[${code}]`);
    }
  });

  it("a range past 31 days, or a chart that is neither .svg nor .html, is refused", async () => {
    const input = await file("range.json", herd);
    const long = await runCli([
      "simulate",
      "--file",
      input,
      "--from",
      from,
      "--to",
      "2026-04-03T08:30:00Z",
    ]);
    expect(long.code).toBe(1);
    expect(long.stderr).toContain("[SIMULATION_TOO_LARGE]");
    const png = await simulateCli(input, "--chart", "x.png");
    expect(png.code).toBe(1);
    expect(png.stderr).toContain("[INVALID_OPTION]");
  });
});
