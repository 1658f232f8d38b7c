import type { Command } from "commander";
import { withRota } from "./context.js";
import { printJson, snake, snakeTable } from "./output.js";

export function registerSweeps(program: Command): void {
  const sweeps = program
    .command("sweeps")
    .description("list limited-capacity sweeps, and kick one (top it up to its max running)");

  sweeps
    .command("list")
    .description("every recorded sweep: queue, max running, running and waiting instances, cron")
    .option("--json", "print a JSON array")
    .action(async (options: { json?: boolean }, command: Command) => {
      const rows = await withRota(command, (rota) => rota.sweeps.list());
      if (options.json) {
        printJson(snake(rows));
        return;
      }
      process.stdout.write(
        `${snakeTable(rows, ["name", "queue", "max_running", "running", "waiting", "paused", "cron", "last_kicked_at"])}\n`,
      );
    });

  sweeps
    .command("run <name>")
    .description(
      "kick sweep NAME: enqueue instances up to its max running (those queued or running count)",
    )
    .option("--json", "print JSON")
    .action(async (name: string, options: { json?: boolean }, command: Command) => {
      const kicked = await withRota(command, (rota) => rota.sweeps.run(name));
      if (options.json) printJson(snake(kicked));
      else process.stdout.write(`sweep "${kicked.name}": ${kicked.started} instance(s) started\n`);
    });
}
