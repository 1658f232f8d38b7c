import { readFile, writeFile } from "node:fs/promises";
import { extname } from "node:path";
import type { Command } from "commander";
import { RotaError } from "../errors.js";
import { type Simulation, simulate } from "../schedule/simulate.js";
import { parseSimulationFile } from "../schedule/simulation-file.js";
import { isoDate, logLine, printJson, table } from "./output.js";
import { formatCount, minuteLabel, simulationHtml, simulationSvg } from "./simulation-chart.js";

interface SimulateOptions {
  file: string;
  from: string;
  to: string;
  json?: boolean;
  chart?: string;
}

/**
 * `rota simulate`: the load a set of schedules would put on the workers,
 * minute by minute, computed without a database (src/schedule/simulate.ts).
 */
export function registerSimulate(program: Command): void {
  program
    .command("simulate")
    .description(
      "executions per minute that schedules with targets would start, placed as the orchestrator places them (no database needed)",
    )
    .requiredOption(
      "--file <file>",
      'JSON array of schedules as upsert takes them, each with "targets": a count N (keys "target-1" … "target-N") or an array of keys; without targets a schedule runs its own grid',
    )
    .requiredOption("--from <iso>", "start of the range, on a whole minute (UTC)")
    .requiredOption("--to <iso>", `end of the range (excluded), at most 31 days later`)
    .option("--json", "print the counts per minute as JSON")
    .option("--chart <file>", "also draw the counts: FILE.svg (a chart) or FILE.html (a page)")
    .action(async (options: SimulateOptions) => {
      const render = options.chart === undefined ? null : chartRenderer(options.chart);
      const schedules = parseSimulationFile(await readJson(options.file), options.file);
      const simulation = simulate(schedules, {
        from: isoDate("--from", options.from) as Date,
        to: isoDate("--to", options.to) as Date,
      });
      if (render !== null && options.chart !== undefined) {
        await writeChart(options.chart, render(simulation));
        logLine(`chart written to ${options.chart}`);
      }
      if (options.json) printJson(simulationJson(simulation));
      else process.stdout.write(`${summary(simulation)}\n`);
    });
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw fileError("--file", `Cannot read --file ${file}`, cause);
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw fileError("--file", `--file ${file} is not JSON`, cause);
  }
}

/** A file the command cannot use, named by its flag, with the system's reason. */
function fileError(flag: string, what: string, cause: unknown): RotaError {
  return new RotaError("INVALID_OPTION", `${what}: ${(cause as Error).message}.`, {
    cause,
    details: { flag },
  });
}

/** Chosen by the file's extension, before any work, so a typo fails at once. */
function chartRenderer(file: string): (simulation: Simulation) => string {
  const ext = extname(file).toLowerCase();
  if (ext === ".svg") return simulationSvg;
  if (ext === ".html" || ext === ".htm") return simulationHtml;
  throw new RotaError("INVALID_OPTION", `--chart must name an .svg or .html file, got "${file}".`, {
    details: { flag: "--chart" },
  });
}

async function writeChart(file: string, content: string): Promise<void> {
  try {
    await writeFile(file, content, "utf8");
  } catch (cause) {
    throw fileError("--chart", `Cannot write --chart ${file}`, cause);
  }
}

/** The JSON the command prints: every minute of the range, zeros included. */
export function simulationJson(simulation: Simulation): unknown {
  const fromMs = simulation.from.getTime();
  return {
    per_minute: simulation.perMinute.map((count, m) => ({
      minute: new Date(fromMs + m * 60_000).toISOString(),
      count,
    })),
    peak: simulation.peak,
    peak_minute: simulation.peakMinute?.toISOString() ?? null,
    schedules: simulation.schedules.map((s) => ({
      name: s.name,
      executions: s.executions,
      peak: s.peak,
      peak_minute: s.peakMinute?.toISOString() ?? null,
    })),
  };
}

function summary(simulation: Simulation): string {
  const total = simulation.perMinute.reduce((sum, c) => sum + c, 0);
  const rows = simulation.schedules.map((s) => ({
    schedule: s.name,
    executions: formatCount(s.executions),
    "peak/min": formatCount(s.peak),
    "peak minute (UTC)": minuteLabel(s.peakMinute),
  }));
  return [
    `${simulation.schedules.length} schedule(s), ${minuteLabel(simulation.from)} to ${minuteLabel(simulation.to)} UTC (${formatCount(simulation.perMinute.length)} minutes)`,
    `all schedules: ${formatCount(total)} executions, peak ${formatCount(simulation.peak)}/min at ${minuteLabel(simulation.peakMinute)} UTC`,
    "",
    table(rows, ["schedule", "executions", "peak/min", "peak minute (UTC)"]),
  ].join("\n");
}
