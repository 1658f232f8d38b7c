import type { Command } from "commander";
import { RotaError } from "../errors.js";
import { withRota } from "./context.js";
import { integerOption, isoDate, logLine, printJson, progress, table } from "./output.js";

/** A JSON option value, or a coded error naming the flag. */
function jsonOption(flag: string, value: string | undefined): never | undefined {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as never;
  } catch (error) {
    throw new RotaError("INVALID_OPTION", `${flag} must be JSON: ${(error as Error).message}.`, {
      details: { flag },
    });
  }
}

export function registerJobs(program: Command): void {
  const jobs = program.command("jobs").description("inspect, cancel and replay jobs");

  jobs
    .command("list")
    .description(
      "jobs, newest first, a page at a time (--before the id the last page printed as next)",
    )
    .option("--state <state>", "scheduled, available, running, succeeded, failed, cancelled, …")
    .option("--queue <queue>")
    .option("--task <task>")
    .option("--payload <json>", "jobs whose payload contains this JSON, such as '{\"tenant\": 42}'")
    .option("--created-from <iso>", "created at or after")
    .option("--created-to <iso>", "created before")
    .option("--before <id>", "only jobs older than this id (the next page)")
    .option("--limit <n>", "at most this many (1-500)", (v) => integerOption("--limit", v), 50)
    .option("--json", "print {jobs, next}")
    .action(async (options, command: Command) => {
      const page = await withRota(command, (rota) =>
        rota.findJobs({
          state: options.state,
          queue: options.queue,
          task: options.task,
          payload: jsonOption("--payload", options.payload),
          createdFrom: isoDate("--created-from", options.createdFrom),
          createdTo: isoDate("--created-to", options.createdTo),
          before: options.before,
          limit: options.limit,
        }),
      );
      if (options.json) {
        printJson(page);
        return;
      }
      process.stdout.write(
        `${table(page.jobs as unknown as Record<string, unknown>[], ["id", "queue", "task", "state", "attempts", "run_at", "last_error"])}\n`,
      );
      if (page.next !== null)
        logLine(
          page.scannedTo
            ? `searched down to job ${page.scannedTo}; older ones: --before ${page.next}`
            : `more: --before ${page.next}`,
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
    .command("retry <id>")
    .description("put one failed or cancelled job back in its queue with fresh attempts")
    .option("--json", "print JSON")
    .action(async (id: string, options, command: Command) => {
      const result = await withRota(command, (rota) => rota.retryJob(id));
      if (options.json) printJson(result);
      else logLine(`job ${result.id}: ${result.previousState} -> available`);
    });

  jobs
    .command("replay")
    .description(
      "put failed jobs back in their queues with fresh attempts (1,000 a transaction, progress on stderr)",
    )
    .option("--queue <queue>")
    .option("--task <task>")
    .option("--from <iso>", "failed at or after")
    .option("--to <iso>", "failed before")
    .option("--json", "print JSON")
    .action(async (options, command: Command) => {
      const shown = progress("jobs replay");
      const ids = await withRota(command, (rota) =>
        rota.replayFailed(
          {
            queue: options.queue,
            task: options.task,
            from: isoDate("--from", options.from),
            to: isoDate("--to", options.to),
          },
          { onProgress: (replayed) => shown.update(replayed) },
        ),
      );
      shown.end(ids.length);
      if (options.json) printJson({ replayed: ids.length, ids });
      else logLine(`replayed ${ids.length} failed job(s)`);
    });

  jobs
    .command("prune")
    .description(
      "delete finished jobs past their retention now (5,000 a statement until none is left, progress on stderr)",
    )
    .option("--succeeded-ms <ms>", "keep succeeded jobs this long", (v) =>
      integerOption("--succeeded-ms", v),
    )
    .option("--failed-ms <ms>", "keep failed jobs this long (default 14 days)", (v) =>
      integerOption("--failed-ms", v),
    )
    .option(
      "--cancelled-ms <ms>",
      "keep cancelled, skipped, superseded and missed jobs this long (default a day)",
      (v) => integerOption("--cancelled-ms", v),
    )
    .option(
      "--history-ms <ms>",
      "keep finished schedule executions and batches this long (default 7 days)",
      (v) => integerOption("--history-ms", v),
    )
    .option("--json", "print JSON")
    .action(async (options, command: Command) => {
      const shown = progress("jobs prune");
      const deleted = await withRota(command, (rota) =>
        rota.prune({
          ...(options.succeededMs === undefined ? {} : { succeededMs: options.succeededMs }),
          ...(options.failedMs === undefined ? {} : { failedMs: options.failedMs }),
          ...(options.cancelledMs === undefined ? {} : { cancelledMs: options.cancelledMs }),
          ...(options.historyMs === undefined ? {} : { historyMs: options.historyMs }),
          maxBatches: Number.MAX_SAFE_INTEGER,
          onProgress: (done) => shown.update(done),
        }),
      );
      shown.end(deleted);
      if (options.json) printJson({ deleted });
      else logLine(`deleted ${deleted} finished row(s)`);
    });
}
