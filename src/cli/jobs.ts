import type { Command } from "commander";
import { RotaError } from "../errors.js";
import { withRota } from "./context.js";
import { isoDate, logLine, printJson, table } from "./output.js";

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
