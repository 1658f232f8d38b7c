import type { Command } from "commander";
import type { CaptureEvent } from "../capture/capture-input.js";
import { withRota } from "./context.js";
import { printJson, snake, snakeTable } from "./output.js";

interface AddFlags {
  table: string;
  on: string;
  task: string;
  columns?: string;
  key?: string;
  queue?: string;
  json?: boolean;
}

export function registerCapture(program: Command): void {
  const capture = program
    .command("capture")
    .description(
      "change capture: triggers on your tables that enqueue a job per changed row (add, rm, list)",
    );

  capture
    .command("add <name>")
    .description(
      "install capture NAME: a change to TABLE (by any client, in any transaction) enqueues a TASK job per row key, coalesced while it waits; adding NAME again on the same table updates it",
    )
    .requiredOption("--table <table>", 'the table, as in SQL ("public.projects")')
    .requiredOption("--on <events>", "comma-separated events: insert,update,delete")
    .requiredOption("--task <task>", "the task its jobs run")
    .option("--columns <columns>", "comma-separated columns to capture (default: all)")
    .option("--key <columns>", "comma-separated columns identifying a row (default: primary key)")
    .option("--queue <queue>", "the queue its jobs go to (default: default)")
    .option("--json", "print JSON")
    .action(async (name: string, flags: AddFlags, command: Command) => {
      const added = await withRota(command, (rota) =>
        rota.capture.add({
          name,
          table: flags.table,
          on: list(flags.on) as CaptureEvent[],
          task: flags.task,
          ...(flags.columns !== undefined ? { columns: list(flags.columns) } : {}),
          ...(flags.key !== undefined ? { key: list(flags.key) } : {}),
          ...(flags.queue !== undefined ? { queue: flags.queue } : {}),
        }),
      );
      if (flags.json) printJson(snake(added));
      else
        process.stdout.write(
          `capture "${added.name}" installed on ${added.table} (${added.on.join(", ")}): task "${added.task}" in queue "${added.queue}", keyed by ${added.key.join(", ")}\n`,
        );
    });

  capture
    .command("rm <name>")
    .alias("remove")
    .description(
      "remove capture NAME: drop its function and every trigger calling it (its queued jobs stay)",
    )
    .option("--json", "print JSON")
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      const removed = await withRota(command, (rota) => rota.capture.remove(name));
      if (options.json) printJson(snake(removed));
      else
        process.stdout.write(
          `capture "${removed.name}" removed (${removed.droppedTriggers.length} trigger(s) dropped)\n`,
        );
    });

  capture
    .command("list")
    .description(
      "every capture: table, events, task, queue, status of its triggers, jobs queued, queue paused",
    )
    .option("--json", "print a JSON array")
    .action(async (options: { json?: boolean }, command: Command) => {
      const rows = await withRota(command, (rota) => rota.capture.list());
      if (options.json) {
        printJson(snake(rows));
        return;
      }
      const lines = rows.map((c) => ({
        ...c,
        on: c.on.join(","),
        columns: c.columns === null ? "*" : c.columns.join(","),
        key: c.key.join(","),
        missing: c.missing.join(","),
      }));
      process.stdout.write(
        `${snakeTable(lines, ["name", "table", "on", "columns", "key", "task", "queue", "status", "missing", "queued", "paused"])}\n`,
      );
    });
}

/** "a, b,c" → ["a", "b", "c"]; empty items dropped (their absence is add's to refuse). */
function list(text: string): string[] {
  return text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}
