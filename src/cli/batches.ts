import type { Command } from "commander";
import type { BatchState } from "../batches/batches.js";
import { RotaError } from "../errors.js";
import { withRota } from "./context.js";
import { integerOption, printJson, snake, snakeTable } from "./output.js";

export function registerBatches(program: Command): void {
  const batches = program
    .command("batches")
    .description(
      "inspect batches: sets of jobs with a callback enqueued once when all have finished",
    );

  batches
    .command("list")
    .description("batches, newest first, with their counts")
    .option("--state <state>", "open, finished or expired")
    .option("--limit <n>", "at most this many", "100")
    .option("--json", "print a JSON array")
    .action(
      async (options: { state?: string; limit: string; json?: boolean }, command: Command) => {
        const rows = await withRota(command, (rota) =>
          rota.batches.list({
            state: options.state as BatchState | undefined,
            limit: integerOption("--limit", options.limit),
          }),
        );
        if (options.json) printJson(snake(rows));
        else
          process.stdout.write(
            `${snakeTable(rows, ["id", "state", "total", "succeeded", "failed", "cancelled", "pending", "callback_task", "created_at", "expires_at", "finished_at"])}\n`,
          );
      },
    );

  batches
    .command("get <id>")
    .description("one batch: counts, callback, and the members still open if it expired")
    .option("--json", "print JSON")
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const batch = await withRota(command, (rota) => rota.batches.get(id));
      if (!batch) {
        throw new RotaError("BATCH_NOT_FOUND", `No batch with id ${id}.`, { details: { id } });
      }
      if (options.json) printJson(snake(batch));
      else
        for (const [key, value] of Object.entries(snake(batch) as Record<string, unknown>))
          process.stdout.write(`${key.padEnd(20)} ${JSON.stringify(value)}\n`);
    });
}
