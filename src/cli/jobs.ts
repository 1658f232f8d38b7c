import type { Command } from "commander";
import type { Rota } from "../client.js";
import { RotaError } from "../errors.js";
import { type GlobalOptions, rotaFor } from "./context.js";
import { logLine, printJson } from "./output.js";

/** Runs `fn` with a Rota for the command's global options, closing it after. */
async function withRota<T>(command: Command, fn: (rota: Rota) => Promise<T>): Promise<T> {
  const rota = rotaFor(command.optsWithGlobals<GlobalOptions>());
  try {
    return await fn(rota);
  } finally {
    await rota.close();
  }
}

function isoDate(flag: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw new RotaError("INVALID_OPTION", `${flag} must be an ISO-8601 time, got "${value}".`, {
      details: { flag },
    });
  }
  return date;
}

function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (v: unknown) =>
    v instanceof Date ? v.toISOString() : v === null || v === undefined ? "" : String(v);
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(columns), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join("\n");
}

export function registerJobs(program: Command): void {
  const jobs = program.command("jobs").description("inspect, cancel and replay jobs");

  jobs
    .command("list")
    .description("jobs, newest first")
    .option("--state <state>", "scheduled, available, running, succeeded, failed, cancelled, …")
    .option("--queue <queue>")
    .option("--task <task>")
    .option("--limit <n>", "at most this many", "100")
    .option("--json", "print a JSON array")
    .action(async (options, command: Command) => {
      const rows = await withRota(command, (rota) =>
        rota.listJobs({
          state: options.state,
          queue: options.queue,
          task: options.task,
          limit: Number(options.limit),
        }),
      );
      if (options.json) printJson(rows);
      else
        process.stdout.write(
          `${table(rows as unknown as Record<string, unknown>[], ["id", "queue", "task", "state", "attempts", "run_at", "last_error"])}\n`,
        );
    });

  jobs
    .command("get <id>")
    .description("one job, whole")
    .option("--json", "print JSON")
    .action(async (id: string, options, command: Command) => {
      const job = await withRota(command, (rota) => rota.getJob(id));
      if (!job) throw new RotaError("JOB_NOT_FOUND", `No job with id ${id}.`, { details: { id } });
      if (options.json) printJson(job);
      else
        for (const [key, value] of Object.entries(job))
          process.stdout.write(`${key.padEnd(20)} ${JSON.stringify(value)}\n`);
    });

  jobs
    .command("cancel <id>")
    .description("cancel a queued job, or ask a running one to stop")
    .option("--json", "print JSON")
    .action(async (id: string, options, command: Command) => {
      const result = await withRota(command, (rota) => rota.cancel(id));
      if (options.json) printJson(result);
      else
        logLine(
          `job ${result.id}: ${result.previousState ?? result.state} -> ${result.state === "running" ? "cancel requested" : result.state}`,
        );
    });

  jobs
    .command("replay")
    .description("put failed jobs back in their queues with fresh attempts")
    .option("--queue <queue>")
    .option("--task <task>")
    .option("--from <iso>", "failed at or after")
    .option("--to <iso>", "failed before")
    .option("--json", "print JSON")
    .action(async (options, command: Command) => {
      const ids = await withRota(command, (rota) =>
        rota.replayFailed({
          queue: options.queue,
          task: options.task,
          from: isoDate("--from", options.from),
          to: isoDate("--to", options.to),
        }),
      );
      if (options.json) printJson({ replayed: ids.length, ids });
      else logLine(`replayed ${ids.length} failed job(s)`);
    });
}
